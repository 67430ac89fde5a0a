#!/usr/bin/env bash
# What snapshots cost: file-coco (snapshots on) and file-coco-nosnap
# (`snapshots: false`: no decoded frame kept, no picture made), interleaved
# in ROUNDS rounds on the same binary, so that the machine's drift hits both.
# Usage: benches/snapshots.sh [FRAMES] [ROUNDS]   (release build first)
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMES=${1:-1500}
ROUNDS=${2:-3}
BIN=${VISIOND_BIN:-${CARGO_TARGET_DIR:-target}/release/visiond}
export VISIOND_MEDIA=${VISIOND_MEDIA:-$HOME/.cache/visiond/media}
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
  for s in file-coco file-coco-nosnap; do
    text=$("$BIN" bench -c pipelines/bench.yaml --stream "$s" --frames "$FRAMES" 2>/dev/null)
    row=$(grep "^| $s |" <<<"$text")
    snaps=$(grep '^snapshots:' <<<"$text")
    echo "round $r $row $snaps" | tee -a "$out"
  done
done
# Medians of frames/s (column 6 of the line) and CPU ms/frame (column 7).
for s in file-coco file-coco-nosnap; do
  fps=$(grep "| $s |" "$out" | awk -F'|' '{print $5 + 0}' | sort -n)
  cpu=$(grep "| $s |" "$out" | awk -F'|' '{print $6 + 0}' | sort -n)
  n=$(wc -l <<<"$fps")
  m=$(( (n + 1) / 2 ))
  echo "$s: median $(sed -n ${m}p <<<"$fps") frames/s, $(sed -n ${m}p <<<"$cpu") ms CPU/frame ($n rounds)"
done
rm -f "$out"
