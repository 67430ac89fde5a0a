#!/usr/bin/env bash
# Scale: N RTSP streams of 720p30 H.264 (the photos clip served as it is by
# gst-rtsp-server, no re-encoding, joined 81 times so it does not end), each
# at `fps: 5`, through the daemon and a real broker. Per N: analysed
# frames/s, drops, latency_ms p50/p99 (from the messages), CPU and RSS of
# the daemon, with what the RSS is made of.
# Each N is measured over WINDOW seconds (default 20) after WARM s of
# start-up (default 3).
#   [WINDOW=S] [WARM=S] [MODEL=PATH] [VISIOND_BIN=PATH] [CAMERA_CLIP=MP4]
#   [STREAM_EXTRA='motion: false'] benches/scale.sh [N...]
#   (default: 1 2 4 8; VISIOND_BIN: another build, to compare two;
#   CAMERA_CLIP: what the cameras serve, e.g. the set-up's still.mp4)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=("${@:-1 2 4 8}"); [ $# -eq 0 ] && COUNTS=(1 2 4 8)
WINDOW="${WINDOW:-20}"
. benches/lib.sh
cargo build --release --quiet --example rtsp-server --bin visiond
echo "| streams | analysed frames/s | expected | dropped | latency p50 ms | latency p99 ms | CPU % | RSS MiB | heap in use MiB | files MiB | rest MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${COUNTS[@]}"; do
  MQTT="$(free_port)"
  /usr/sbin/mosquitto -p "$MQTT" >/dev/null 2>&1 & pids+=($!)
  {
    echo "node: scale"; echo "mqtt: {url: \"mqtt://127.0.0.1:$MQTT\"}"
    echo "http: {listen: \"127.0.0.1:$(free_port)\"}"
    echo "models:"; echo "  - {name: coco, path: ${MODEL:-$PWD/models/ssd_mobilenet_v2_coco.onnx}, labels: $PWD/models/coco_labels.txt}"
    echo "streams:"
  } > "$work/c.yaml"
  cameras "$n" "$work/c.yaml"
  http="$(sed -n 's/^http: {listen: "\(.*\)"}/\1/p' "$work/c.yaml")"
  "${VISIOND_BIN:-target/release/visiond}" run -c "$work/c.yaml" 2>"$work/log" & daemon=$!; pids+=($daemon)
  sleep "${WARM:-3}"   # connect, first key frames
  dropped() { curl -s "http://$http/metrics" | awk '/^visiond_frames_dropped_total/ {s+=$2} END {print s+0}'; }
  mosquitto_sub -p "$MQTT" -t 'visiond/scale/+/detections' > "$work/msgs" & sub=$!; pids+=($sub)
  d0="$(dropped)"; t0="$(awk '{print $14+$15}' /proc/$daemon/stat)"; sleep "$WINDOW"
  t1="$(awk '{print $14+$15}' /proc/$daemon/stat)"; d1="$(dropped)"; kill "$sub"
  # RSS, and what it is made of: the heap in use (what glibc handed out and
  # did not get back), mapped files (libraries, shared with other processes)
  # and the rest (what glibc keeps after a free, thread stacks).
  rss="$(awk '/VmRSS/ {print $2/1024}' /proc/$daemon/status)"
  files="$(awk '/RssFile|RssShmem/ {s+=$2} END {print s/1024}' /proc/$daemon/status)"
  heap="$(curl -s "http://$http/metrics" | awk '/^visiond_heap_in_use_bytes/ {print $2/1048576}')"
  python3 - "$work/msgs" "$n" "$t0" "$t1" "$rss" "$((d1 - d0))" "$WINDOW" "$heap" "$files" <<'PY'
import json, sys
path, n, t0, t1, rss, dropped, window, heap, files = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6]), sys.argv[6], *map(float, sys.argv[7:10])
lat = sorted(json.loads(l)["latency_ms"] for l in open(path) if l.strip())
pct = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else 0
hz = 100  # clock ticks per second
print(f"| {n} | {len(lat)/window:.1f} | {5*n} | {dropped} | {pct(.5):.1f} | {pct(.99):.1f} | {(t1-t0)/hz/window*100:.0f} | {rss:.0f} | {heap:.0f} | {files:.0f} | {rss-heap-files:.0f} |")
PY
  stop_all
done
