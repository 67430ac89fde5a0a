#!/usr/bin/env bash
# Live latency: a 30 fps H.264 RTSP camera (gst-rtsp-server, x264
# zerolatency), every frame analysed; capture-to-result latency p50/p99 from
# `visiond bench --stream`, next to the model's own latency.
#   benches/live.sh [SECONDS] [WIDTHxHEIGHT]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-30}"; SIZE="${2:-640x480}"; W="${SIZE%x*}"; H="${SIZE#*x}"
cargo build --release --quiet --example rtsp-server --bin visiond
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
target/release/examples/rtsp-server --port "$PORT" --launch \
  "videotestsrc is-live=true pattern=ball ! video/x-raw,width=$W,height=$H,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rtph264pay name=pay0 pt=96" \
  > "$work/rtsp.out" & pids+=($!)
sleep 1
cat > "$work/c.yaml" <<YAML
mqtt: {url: "mqtt://127.0.0.1:1"}
models:
  - {name: coco, path: $PWD/models/ssd_mobilenet_v2_coco.onnx, labels: $PWD/models/coco_labels.txt}
streams:
  - {name: live, source: "rtsp://127.0.0.1:$PORT/cam", model: coco}
YAML
echo "live ${W}x${H} 30 fps RTSP, ${SECS} s, SSD-MobileNetV2, default layout (2 workers x 1 thread):"
target/release/visiond bench -c "$work/c.yaml" --stream live --frames $((SECS * 30)) 2>/dev/null
echo "the model alone:"
target/release/visiond bench -c "$work/c.yaml" --model coco --frames 300 2>/dev/null | grep -E '^\| (model|---|coco \| 2 x 1 \| 1 )'
