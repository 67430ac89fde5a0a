#!/usr/bin/env bash
# The cascade's cost: `visiond bench --stream` on cat.mp4 (two cats coming
# closer for 6 s, then still for 13 s; 100 frames analysed at fps 5), as a
# stream with a classify rule for its cats, with a rule for a label the clip
# lacks (dog), and with none. Rounds alternate the three, so that the
# machine's drift falls on all alike. Per run: CPU ms per analysed frame
# (decode, detector, tracking, cascade, snapshots) and classifier calls.
#   [ROUNDS=N] benches/classify.sh       (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
. benches/lib.sh
cargo build --release --quiet --bin visiond
CAT="$CACHE/media/cat.mp4"
[ -f "$CAT" ] || { echo "run scripts/setup-assets.sh first" >&2; exit 1; }
stream() {
  echo "  - {name: $1, source: \"file://$CAT\", model: coco, fps: 5, labels: [cat]$2}"
}
{
  echo "node: b"; echo "mqtt: {url: \"mqtt://127.0.0.1:1\"}"
  echo "models:"
  echo "  - {name: coco, path: $PWD/models/ssd_mobilenet_v2_coco.onnx, labels: $PWD/models/coco_labels.txt, workers: 1}"
  echo "  - {name: imagenet, path: $PWD/models/efficientnet_lite0.onnx, labels: $PWD/models/imagenet_labels.txt}"
  echo "streams:"
  stream cat ", classify: [{labels: [cat], model: imagenet, group: cats}]"
  stream dog ", classify: [{labels: [dog], model: imagenet, group: dogs}]"
  stream none ""
} > "$work/c.yaml"
echo "| round | stream | rule | CPU ms/frame | classifier load ms | classifier calls | ms per call | named |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq "$ROUNDS"); do
  for s in cat dog none; do
    VISIOND_LOG=info,visiond::cascade=debug target/release/visiond bench -c "$work/c.yaml" --stream "$s" \
      >"$work/out" 2>"$work/log"
    cpu="$(awk -F'|' -v s="$s" '$2 ~ " "s" " {gsub(/ /,"",$6); print $6}' "$work/out")"
    calls="$(grep -c 'classify attempt\|classified' "$work/log" || true)"
    named="$(grep -o 'sub_label=[^=]*score' "$work/log" | sed 's/sub_label=//; s/ score$//' | head -1 || true)"
    per="$({ grep 'classify attempt\|classified' "$work/log" || true; } | sed -n 's/.* ms=\([0-9.]*\).*/\1/p' \
      | awk '{s+=$1; n++} END {if (n) printf "%.1f", s/n; else print "-"}')"
    load="$({ grep 'classifier loaded' "$work/log" || true; } | sed -n 's/.* ms=\([0-9.]*\).*/\1/p' \
      | awk '{printf "%.0f", $1}')"
    rule="$(case $s in cat) echo "cat -> cats";; dog) echo "dog -> dogs";; none) echo "-";; esac)"
    echo "| $r | $s | $rule | $cpu | ${load:--} | $calls | $per | ${named:--} |"
  done
done
