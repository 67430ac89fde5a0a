#!/usr/bin/env bash
# Live latency: a 30 fps H.264 RTSP camera (gst-rtsp-server, x264
# zerolatency), every frame analysed by the daemon and published to a real
# mosquitto. From the messages: capture to publish (`latency_ms`) and capture
# to a subscriber (arrival at mosquitto_sub minus `captured_at`, which has
# millisecond resolution), p50/p99; the daemon's CPU per frame and RSS; then
# the model's own latency on its own.
#   benches/live.sh [SECONDS] [WIDTHxHEIGHT]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-30}"; SIZE="${2:-640x480}"; W="${SIZE%x*}"; H="${SIZE#*x}"
cargo build --release --quiet --example rtsp-server --bin visiond
. benches/lib.sh
PORT="$(free_port)"; MQTT="$(free_port)"
target/release/examples/rtsp-server --port "$PORT" --launch \
  "videotestsrc is-live=true pattern=ball ! video/x-raw,width=$W,height=$H,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtph264pay name=pay0 pt=96" \
  > "$work/rtsp.out" & pids+=($!)
/usr/sbin/mosquitto -p "$MQTT" >/dev/null 2>&1 & pids+=($!)
sleep 1
cat > "$work/c.yaml" <<YAML
node: bench
mqtt: {url: "mqtt://127.0.0.1:$MQTT"}
models:
  - {name: coco, path: $PWD/models/ssd_mobilenet_v2_coco.onnx, labels: $PWD/models/coco_labels.txt}
streams:
  - {name: live, source: "rtsp://127.0.0.1:$PORT/cam", model: coco}
YAML
target/release/visiond run -c "$work/c.yaml" 2>"$work/log" & daemon=$!; pids+=($daemon)
sleep 5   # connect, first key frame, warm caches
mosquitto_sub -p "$MQTT" -t 'visiond/bench/live/detections' -F '%U %p' > "$work/msgs" & sub=$!; pids+=($sub)
t0="$(awk '{print $14+$15}' /proc/$daemon/stat)"; sleep "$SECS"
t1="$(awk '{print $14+$15}' /proc/$daemon/stat)"
kill "$sub"
rss="$(awk '/VmRSS/ {print $2/1024}' /proc/$daemon/status)"; hwm="$(awk '/VmHWM/ {print $2/1024}' /proc/$daemon/status)"
echo "live ${W}x${H} 30 fps RTSP, ${SECS} s, SSD-MobileNetV2, default layout (2 workers x 1 thread), QoS 0 to mosquitto:"
python3 - "$work/msgs" "$SECS" "$t0" "$t1" "$rss" "$hwm" "$(getconf CLK_TCK)" <<'PY'
import datetime, json, sys
path, secs, t0, t1, rss, hwm, hz = sys.argv[1], *map(float, sys.argv[2:8])
pub, sub = [], []
for line in open(path):
    at, payload = line.split(" ", 1)
    m = json.loads(payload)
    captured = datetime.datetime.fromisoformat(m["captured_at"].replace("Z", "+00:00")).timestamp()
    pub.append(m["latency_ms"])
    sub.append((float(at) - captured) * 1e3)
pct = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
n = len(pub)
print("| frames | frames/s | CPU ms/frame | capture to publish p50 / p99 ms | capture to subscriber p50 / p99 ms | RSS MiB | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
print(f"| {n} | {n/secs:.1f} | {(t1-t0)/hz*1e3/max(n,1):.2f} | {pct(pub,.5):.1f} / {pct(pub,.99):.1f} "
      f"| {pct(sub,.5):.1f} / {pct(sub,.99):.1f} | {rss:.0f} | {hwm:.0f} |")
PY
echo
echo "the model alone:"
target/release/visiond bench -c "$work/c.yaml" --model coco --frames 300 2>/dev/null | grep -E '^\| (model|---|coco \| [12] x 1 \| 1 )'
