#!/usr/bin/env bash
# Camera outage benchmark: RSS before and after a camera is down for
# OUTAGE seconds (default 60), and the time from its return to the first
# result of the new session. Real mosquitto, real RTSP server, release build.
#   benches/outage.sh [OUTAGE_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUTAGE="${1:-60}"
cargo build --release --quiet --example rtsp-server --bin visiond
. benches/lib.sh
MQTT_PORT="$(free_port)"; RTSP_PORT="$(free_port)"
CAMERA="videotestsrc is-live=true pattern=ball ! video/x-raw,width=1280,height=720,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtph264pay name=pay0 pt=96"
/usr/sbin/mosquitto -p "$MQTT_PORT" >/dev/null 2>&1 & pids+=($!)
start_camera() { target/release/examples/rtsp-server --port "$RTSP_PORT" --launch "$CAMERA" > "$work/rtsp.out" & cam=$!; pids+=($cam); sleep 0.5; }
start_camera
cat > "$work/c.yaml" <<YAML
node: bench
mqtt: {url: "mqtt://127.0.0.1:$MQTT_PORT"}
models:
  - {name: coco, path: $PWD/models/ssd_mobilenet_v2_coco.onnx, labels: $PWD/models/coco_labels.txt}
streams:
  - {name: cam, source: "rtsp://127.0.0.1:$RTSP_PORT/cam", model: coco, fps: 5}
  - {name: steady, source: "test://?width=1280&height=720", model: coco, fps: 5}
YAML
# Each message with its arrival time. mosquitto_sub itself, not a pipeline,
# in the background: stop_all must be able to end it (a pipeline's $! is its
# last process, and the subscriber would then retry the stopped broker forever).
mosquitto_sub -p "$MQTT_PORT" -t 'visiond/bench/cam/#' -F '%U %t %p' > "$work/cam.log" & pids+=($!)
target/release/visiond run -c "$work/c.yaml" 2>"$work/visiond.log" & daemon=$!; pids+=($daemon)
rss() { awk '/VmRSS/ {print $2/1024}' "/proc/$daemon/status"; }
sleep 20
before="$(rss)"
kill -9 "$cam"; wait "$cam" 2>/dev/null || true
sleep "$OUTAGE"
after="$(rss)"
back="$(date +%s.%N)"
start_camera
sleep 15
session0="$(grep -m1 '/detections' "$work/cam.log" | sed 's/.*"session":"\([0-9a-f]*\)".*/\1/' || true)"
# Say why instead of ending silently (set -e) when the camera gave nothing.
[ -n "$session0" ] || { echo "outage: no result from the camera at all; visiond's log:" >&2; tail -20 "$work/visiond.log" >&2; exit 1; }
first_new="$(grep '/detections' "$work/cam.log" | grep -v "$session0" | head -1 | cut -d' ' -f1)"
recovery="$(python3 -c "print(f'{$first_new - $back:.2f}')" 2>/dev/null || echo none)"
printf '| outage s | RSS before MiB | RSS after outage MiB | growth MiB | first result after return s |\n|---|---|---|---|---|\n'
printf '| %s | %.1f | %.1f | %.1f | %s |\n' "$OUTAGE" "$before" "$after" "$(python3 -c "print($after-$before)")" "$recovery"
