#!/usr/bin/env bash
# The QoS 1 spool under steady traffic to a healthy broker: two test://
# streams at 15 fps (30 QoS 1 messages a second) for MINUTES (default 10),
# spool.log's size sampled every 10 s, then kill -9 and a restart on the same
# spool: how many messages the restart replays. Real mosquitto, release build.
#   benches/spool-steady.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-10}"
cargo build --release --quiet --bin visiond
. benches/lib.sh
MQTT_PORT="$(free_port)"
/usr/sbin/mosquitto -p "$MQTT_PORT" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 50); do (echo > "/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
cat > "$work/c.yaml" <<YAML
node: steady
mqtt: {url: "mqtt://127.0.0.1:$MQTT_PORT", qos: 1, spool: $work/spool}
models:
  - {name: imagenet, path: $PWD/models/efficientnet_lite0.onnx}
streams:
  - {name: a, source: "test://?width=320&height=240", model: imagenet, fps: 15}
  - {name: b, source: "test://?width=320&height=240", model: imagenet, fps: 15}
YAML
mosquitto_sub -p "$MQTT_PORT" -q 1 -t 'visiond/steady/+/detections' > "$work/sub.log" & pids+=($!)
target/release/visiond run -c "$work/c.yaml" 2>"$work/visiond.log" & daemon=$!
size() { stat -c %s "$work/spool/spool.log" 2>/dev/null || echo 0; }
largest=0
echo "| minute | spool.log bytes | messages received |"
echo "|---|---|---|"
for i in $(seq $((MINUTES * 6))); do
  sleep 10
  s="$(size)"; [ "$s" -gt "$largest" ] && largest="$s"
  [ $((i % 6)) -eq 0 ] && echo "| $((i / 6)) | $s | $(wc -l < "$work/sub.log") |"
done
received="$(wc -l < "$work/sub.log")"
kill -9 "$daemon"; wait "$daemon" 2>/dev/null || true
target/release/visiond run -c "$work/c.yaml" 2>"$work/visiond2.log" & again=$!; pids+=($again)
for _ in $(seq 100); do grep -q running "$work/visiond2.log" && break; sleep 0.1; done
replayed="$(grep -o 'messages=[0-9]*' <(grep 'from before the restart' "$work/visiond2.log") | cut -d= -f2 || true)"
echo
echo "after $MINUTES min: $received messages ($(python3 -c "print(round($received/($MINUTES*60),1))")/s), spool.log $(size) bytes at the end, at most $largest; replayed after kill -9: ${replayed:-0}"
