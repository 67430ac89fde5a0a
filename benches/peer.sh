#!/usr/bin/env bash
# Issue 7's Python peer (GStreamer + onnxruntime + paho-mqtt, benches/peer/peer.py)
# side by side with visiond: the same 720p H.264 clip looped, every frame
# analysed by SSD-MobileNetV2, one QoS 0 message per frame to the same
# mosquitto. Both are measured the same way from outside
# (benches/peer/measure.py): messages/s, CPU per message, RSS. The peer is
# run in both of its layouts and its faster one is kept. CPU outside
# inference = CPU per frame minus the model's own: ONNX Runtime's run alone
# (peer.py --model-only: the same library, model and layout, nothing
# before or after the run), one reference for both, so pre- and
# post-processing count as outside for both.
# This VM's speed moves by 5-10 % from minute to minute, and "outside
# inference" is the difference of two such numbers, so every measurement is
# taken ROUNDS times (default 3), the rounds interleaved, and the medians
# compared.
# VISIOND_MODEL=PATH gives visiond another model than the peer's float one
# (issue 14: the int8 SSD against the peer's float SSD); its "outside
# inference" column is then meaningless (measured against the float model).
#   [ROUNDS=N] [VISIOND_MODEL=PATH] benches/peer.sh [WINDOW_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW="${1:-30}"; WARMUP=8; ROUNDS="${ROUNDS:-3}"
. benches/lib.sh

# The peer's venv: Debian's Python for GStreamer's bindings (python3-gi), the
# same pinned onnxruntime wheel as the reference venv, numpy, paho-mqtt.
VENV="$CACHE/venv-peer"
WHEEL="$(ls "$CACHE"/downloads/onnxruntime-*"$(uname -m)".whl | head -1)"
STAMP="$(basename "$WHEEL") numpy==2.1.3 paho-mqtt==2.2.0"
if [ "$(cat "$VENV/.visiond-stamp" 2>/dev/null)" != "$STAMP" ]; then
  rm -rf "$VENV"
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
  "$VENV/bin/pip" install --quiet "$WHEEL" numpy==2.1.3 paho-mqtt==2.2.0
  echo "$STAMP" > "$VENV/.visiond-stamp"
fi
PY="$VENV/bin/python"

cargo build --release --quiet --bin visiond
PORT="$(free_port)"
/usr/sbin/mosquitto -p "$PORT" >/dev/null 2>&1 & pids+=($!)
sleep 0.5
MODEL="$PWD/models/ssd_mobilenet_v2_coco.onnx"; LABELS="$PWD/models/coco_labels.txt"
cat > "$work/c.yaml" <<YAML
node: bench
mqtt: {url: "mqtt://127.0.0.1:$PORT"}
models:
  - {name: coco, path: ${VISIOND_MODEL:-$MODEL}, labels: $LABELS}
streams:
  - {name: clip, source: "file://$CLIP", loop: true, model: coco}
YAML

# measure NAME TOPIC COMMAND...: runs COMMAND, measures it, stops it.
measure() {
  local name="$1" topic="$2"; shift 2
  "$@" >"$work/$name.out" 2>&1 & local pid=$!; pids+=($pid)
  "$PY" benches/peer/measure.py "$pid" "$PORT" "$topic" "$WARMUP" "$WINDOW" > "$work/$name.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq "$ROUNDS"); do
  measure "visiond.$r" 'visiond/bench/clip/detections' target/release/visiond run -c "$work/c.yaml"
  for layout in "1 2" "2 1"; do
    set -- $layout
    measure "peer-$1x$2.$r" 'peer/bench/clip/detections' "$PY" benches/peer/peer.py --clip "$CLIP" \
      --model "$MODEL" --labels "$LABELS" --port "$PORT" --sessions "$1" --threads "$2"
    "$PY" benches/peer/peer.py --model "$MODEL" --model-only --sessions "$1" --threads "$2" --frames 600 \
      > "$work/peer-$1x$2-model.$r.json"
  done
done

"$PY" - "$work" "$WINDOW" "$ROUNDS" "$(basename "${VISIOND_MODEL:-$MODEL}")" <<'PY'
import json, statistics, sys
work, window, rounds, vmodel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
runs = lambda n: [json.load(open(f"{work}/{n}.{r}.json")) for r in range(1, rounds + 1)]
def load(n, layout):
    """The medians over the rounds of the analyser's numbers and of the
    model's alone in its layout; outside inference is paired within each
    round (the two ran a minute apart), then the median taken."""
    pipe, model = runs(n), runs(f"peer-{layout}-model")
    med = lambda rs: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    r = med(pipe)
    r["outside"] = statistics.median(p["cpu_ms_per_frame"] - m["cpu_ms_per_frame"] for p, m in zip(pipe, model))
    return r, med(model)
rows = {"visiond (2 workers x 1 thread)": load("visiond", "2x1")}
peers = {f"Python peer ({l.replace('x', ' session(s) x ')} thread(s))": load(f"peer-{l}", l) for l in ("1x2", "2x1")}
rows.update(peers)
print(f"720p H.264 clip looped, every frame, SSD-MobileNetV2 (visiond: {vmodel}; the peer: the float model), QoS 0 to mosquitto; {window} s measured; medians of {rounds} interleaved rounds")
print("| analyser | frames/s | CPU ms/frame | ONNX Runtime alone, same layout: frames/s, CPU ms/frame | CPU ms/frame outside inference | RSS MiB | peak RSS MiB |")
print("|---|---|---|---|---|---|---|")
for name, (r, m) in rows.items():
    print(f"| {name} | {r['fps']:.1f} | {r['cpu_ms_per_frame']:.1f} | {m['fps']:.1f}, {m['cpu_ms_per_frame']:.1f} "
          f"| {r['outside']:.1f} | {r['rss_mib']:.0f} | {r['peak_rss_mib']:.0f} |")
v = rows["visiond (2 workers x 1 thread)"][0]
name, (p, _) = max(peers.items(), key=lambda kv: kv[1][0]["fps"])
print()
print(f"against the faster peer, {name}:")
print(f"- frames/s: {v['fps'] / p['fps']:.2f}x (goal 1.3x)")
print(f"- CPU per frame outside inference: {v['outside'] / p['outside']:.2f} of the peer's (goal at most 0.5)")
print(f"- RSS: {v['rss_mib'] / p['rss_mib']:.2f} of the peer's (goal at most 0.5)")
PY
