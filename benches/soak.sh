#!/usr/bin/env bash
# Soak: N RTSP cameras of 720p30 H.264 at `fps: 5` through the daemon and a
# real broker for MINUTES, RSS and the heap in use (/metrics) sampled every
# 10 s, a row printed every 30 s. Growth is measured after the first minute
# (pools, arenas and caches filled): RSS by its floors and its trend, the
# heap in use by its trend.
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
metric() { { curl -s "http://$HTTP/metrics" || true; } | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }

echo "$N RTSP cameras 720p30 H.264 at fps 5, SSD-MobileNetV2, $MINUTES min:"
echo "| minute | RSS MiB | heap in use MiB | analysed frames/s since last | dropped | reconnects |"
echo "|---|---|---|---|---|---|"
: > "$work/samples"; last_n=0; last_t=0
for s in $(seq 0 $((MINUTES * 6))); do
  [ "$s" -gt 0 ] && sleep 10
  kill -0 "$daemon" 2>/dev/null || { echo "the daemon exited; log:" >&2; tail -20 "$work/log" >&2; exit 1; }
  t="$((s * 10))"
  rss="$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$daemon/status)"
  heap="$(metric visiond_heap_in_use_bytes | awk '{printf "%.1f", $1/1048576}')"
  [ "$t" -ge 60 ] && echo "$t $rss $heap" >> "$work/samples"
  [ $((s % 3)) -eq 0 ] || continue
  n="$(wc -l < "$work/msgs")"
  rate="-"; [ "$s" -gt 0 ] && rate="$(awk -v a="$n" -v b="$last_n" -v d="$((t - last_t))" 'BEGIN {printf "%.1f", (a-b)/d}')"
  last_n="$n"; last_t="$t"
  echo "| $(awk -v t="$t" 'BEGIN {printf "%.1f", t/60}') | $rss | $heap | $rate | $(metric visiond_frames_dropped_total) | $(grep -c 'reconnecting' "$work/log" || true) |"
done
# RSS swings by tens of MiB for a moment (decoder pools, ONNX Runtime's
# arena, memory freed and kept by glibc), and so does the heap in use (the
# frames and tensors in flight when the sample is taken). A leak raises the
# floor, the level with nothing in flight, so the floors of the two halves
# after minute 1 are compared; the trends (least-squares slopes times the
# run's length) are printed too.
awk -v m="$MINUTES" '
  { t[NR] = $1; r[NR] = $2; h[NR] = $3 }
  function slope(y,   i, st, sy, stt, sty) {
    for (i = 1; i <= NR; i++) { st += t[i]; sy += y[i]; stt += t[i] * t[i]; sty += t[i] * y[i] }
    return (NR * sty - st * sy) / (NR * stt - st * st)
  }
  function floor_of(y, from, to,   i, v) {
    v = 1e12; for (i = from; i <= to; i++) if (y[i] < v) v = y[i]; return v
  }
  END {
    half = int(NR / 2)
    ra = floor_of(r, 1, half); rb = floor_of(r, half + 1, NR)
    ha = floor_of(h, 1, half); hb = floor_of(h, half + 1, NR)
    printf "floors after minute 1, first half -> second half: RSS %.1f -> %.1f MiB (%+.1f), heap in use %.1f -> %.1f MiB (%+.1f); goal: growth under 2 MiB\n", ra, rb, rb - ra, ha, hb, hb - ha
    printf "trends over %d min: RSS %+.1f MiB, heap in use %+.1f MiB\n", m, slope(r) * 60 * m, slope(h) * 60 * m
  }' "$work/samples"
