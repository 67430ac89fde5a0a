#!/usr/bin/env bash
# Soak: N RTSP cameras of 720p30 H.264 at `fps: 5` through the daemon and a
# real broker for MINUTES, RSS sampled every 30 s. Growth is measured from
# the end of the first minute (pools, arenas and caches filled) to the end.
# The cameras serve the photos clip joined into a 12-minute file (benches/lib.sh),
# so no camera ends and reconnects inside the run.
#   benches/soak.sh [MINUTES] [N]      (default: 10 4)
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${1:-10}"; N="${2:-4}"
[ "$MINUTES" -ge 2 ] || { echo "soak: MINUTES must be 2 or more" >&2; exit 2; }
. benches/lib.sh
cargo build --release --quiet --example rtsp-server --bin visiond
MQTT="$(free_port)"; HTTP="127.0.0.1:$(free_port)"
/usr/sbin/mosquitto -p "$MQTT" >/dev/null 2>&1 & pids+=($!)
cat > "$work/c.yaml" <<YAML
node: soak
mqtt: {url: "mqtt://127.0.0.1:$MQTT"}
http: {listen: "$HTTP"}
models:
  - {name: coco, path: $PWD/models/ssd_mobilenet_v2_coco.onnx, labels: $PWD/models/coco_labels.txt}
streams:
YAML
cameras "$N" "$work/c.yaml"
target/release/visiond run -c "$work/c.yaml" 2>"$work/log" & daemon=$!; pids+=($daemon)
mosquitto_sub -p "$MQTT" -t 'visiond/soak/+/detections' > "$work/msgs" & pids+=($!)
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }

echo "$N RTSP cameras 720p30 H.264 at fps 5, SSD-MobileNetV2, $MINUTES min:"
echo "| minute | RSS MiB | analysed frames/s since last | dropped | reconnects |"
echo "|---|---|---|---|---|"
samples=(); last_n=0; last_t=0
for s in $(seq 0 $((MINUTES * 2))); do
  [ "$s" -gt 0 ] && sleep 30
  kill -0 "$daemon" 2>/dev/null || { echo "the daemon exited; log:" >&2; tail -20 "$work/log" >&2; exit 1; }
  rss="$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon/status)"
  n="$(wc -l < "$work/msgs")"; t="$((s * 30))"
  rate="-"; [ "$s" -gt 0 ] && rate="$(awk -v a="$n" -v b="$last_n" -v d="$((t - last_t))" 'BEGIN {printf "%.1f", (a-b)/d}')"
  last_n="$n"; last_t="$t"
  samples+=("$rss")
  echo "| $(awk -v t="$t" 'BEGIN {printf "%.1f", t/60}') | $rss | $rate | $(metric visiond_frames_dropped_total) | $(grep -c 'reconnecting' "$work/log" || true) |"
done
# RSS swings by tens of MiB for a moment (decoder pools, ONNX Runtime's
# arena); a leak shows as a rising floor, so the floors of the two halves
# after minute 1 are compared.
printf '%s\n' "${samples[@]:2}" | awk -v m="$MINUTES" '
  { v[NR] = $1 } END {
    h = int(NR / 2); a = 1e9; b = 1e9
    for (i = 1; i <= h; i++) if (v[i] < a) a = v[i]
    for (i = h + 1; i <= NR; i++) if (v[i] < b) b = v[i]
    printf "RSS floor, minutes 1-%.1f: %.1f MiB; minutes %.1f-%d: %.1f MiB; growth %.1f MiB (goal under 2)\n", 1 + (h - 1) / 2, a, 1 + h / 2, m, b, b - a }'
