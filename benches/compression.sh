#!/usr/bin/env bash
# Issue 14 in one run: the trade-off table (`visiond eval`, float against
# int8 on OpenCV's vtest.avi, which the int8 model was not calibrated on),
# the recommendation for 8 cameras at 5 frames/s (`visiond bench --pick`),
# the daemon on int8 against the Python peer on float (benches/peer.sh), and
# 8 RTSP cameras at fps 5 on each model (benches/scale.sh). Ratios are taken
# within this run: this VM's speed moves from minute to minute.
#   benches/compression.sh [PEER_WINDOW_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
# shellcheck disable=SC1091
. "$CACHE/ENV"; export ORT_DYLIB_PATH VISIOND_MEDIA
cargo build --release --quiet --bin visiond
V=target/release/visiond
C=pipelines/compression.yaml
echo "## visiond eval (every frame of vtest.avi)"
"$V" eval -c "$C" --reference coco --variant coco-int8 "$CACHE/media/opencv/vtest.avi" --speed-frames 300
echo
echo "## the control: the float model against itself"
"$V" eval -c "$C" --reference coco --variant coco "$CACHE/media/opencv/vtest.avi" --every 4 --speed-frames 0 | grep -E "^  all"
echo
echo "## visiond bench --pick, 8 cameras at 5 frames/s"
"$V" bench -c "$C" --model coco --pick --cameras 8 --fps 5 --frames 300
echo
echo "## 8 x 720p30 RTSP cameras at fps 5: int8, then float"
MODEL="$PWD/models/ssd_mobilenet_v2_coco_int8.onnx" benches/scale.sh 8
benches/scale.sh 8 | tail -1
echo
echo "## the daemon on int8 against the Python peer on float"
VISIOND_MODEL="$PWD/models/ssd_mobilenet_v2_coco_int8.onnx" benches/peer.sh "${1:-30}"
