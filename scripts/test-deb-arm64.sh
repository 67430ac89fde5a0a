#!/usr/bin/env bash
# The arm64 package, taken apart and run under emulation (qemu-user) on this
# x86_64 machine: `visiond check` and `visiond bench` with the packaged aarch64
# ONNX Runtime and the shipped models (float and int8), then `visiond run` on
# a real clip (a cat photograph, H.264) publishing to a real mosquitto; the
# detections must name the cat. Needs root for the set-up (apt, multiarch).
# Prints "deb-arm64: N passed, M failed" and the time each step took.
# Emulated times are not device times: a board runs this natively, far faster.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
MEDIA="$CACHE/media"
die() { echo "deb-arm64: error: $*" >&2; exit 1; }
T0=$SECONDS
scripts/apt-deps-arm64.sh
T_SETUP=$((SECONDS - T0))
T0=$SECONDS
deb="$(scripts/package.sh --arch arm64 | tail -1)"
T_BUILD=$((SECONDS - T0))
[ -f "$deb" ] || die "scripts/package.sh --arch arm64 did not make $deb"
for f in ssd_mobilenet_v2_coco.onnx ssd_mobilenet_v2_coco_int8.onnx coco_labels.txt; do
  [ -s "models/$f" ] || die "models/$f is missing: run scripts/setup-assets.sh"
done
for f in chelsea.mp4 opencv/vtest.avi; do
  [ -s "$MEDIA/$f" ] || die "$MEDIA/$f is missing: run scripts/setup-assets.sh"
done
QEMU="$(command -v qemu-aarch64-static)" || die "qemu-aarch64-static not found (scripts/apt-deps-arm64.sh installs qemu-user-static)"

passed=0; failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "deb-arm64: FAILED: $*" >&2; }
check() { if "$@"; then ok; else fail "$*"; fi; }

WORK="$(mktemp -d)"
broker_pid=""; daemon_pid=""; sub_pid=""
cleanup() {
  [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null || true
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
T0=$SECONDS

# The package: an arm64 one, its binary and ONNX Runtime built for aarch64.
check [ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ]
dpkg-deb -x "$deb" "$WORK/root"
BIN="$WORK/root/usr/bin/visiond"
LIB="$WORK/root/usr/lib/visiond/libonnxruntime.so"
for f in "$BIN" "$LIB" "$WORK/root/lib/systemd/system/visiond.service" "$WORK/root/etc/visiond/visiond.yaml"; do
  [ -f "$f" ] || die "the package has no ${f#"$WORK/root"}"
done
check grep -q 'Machine: *AArch64' <(aarch64-linux-gnu-readelf -h "$BIN")
check grep -q 'Machine: *AArch64' <(aarch64-linux-gnu-readelf -h "$LIB")
. scripts/assets/ort-pins.sh
ort_pins arm64
check [ "$(sha256sum "$LIB" | cut -d' ' -f1)" = "$ORT_LIB_SHA" ]
echo "deb-arm64: $(basename "$deb"): $(stat -c %s "$deb") bytes; Depends: $(dpkg-deb -f "$deb" Depends)"

# The emulated binary. No binfmt here: qemu runs it, and GStreamer scans its
# (arm64) plugins in-process, since its scanner would be an exec of an arm64
# binary; its own registry file, never the x86_64 one.
export GST_REGISTRY="$WORK/gst-registry-arm64.bin" GST_REGISTRY_FORK=no
# qemu-user 7.2 passes the host's /proc/cpuinfo (x86) through, on which ONNX
# Runtime's CPU detection (cpuinfo) dereferences NULL: qemu looks paths up under
# its -L prefix first, so an ARM /proc/cpuinfo there (Cortex-A72 cores, as on a
# Pi 4) is what the binary reads; the rest falls through to /. The emulated CPU
# is a Cortex-A72 too (VISIOND_QEMU_CPU: cortex-a76 for a Pi 5's): qemu's default
# "max" CPU offers SVE/SME, whose emulation makes one SSD inference take ~95 s.
QCPU="${VISIOND_QEMU_CPU:-cortex-a72}"
case "$QCPU" in cortex-a76) part=0xd0b; feat="fp asimd evtstrm crc32 cpuid atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp" ;;
  *) part=0xd08; feat="fp asimd evtstrm crc32 cpuid" ;; esac
mkdir -p "$WORK/qemu-root/proc"
for i in $(seq 0 $(($(nproc) - 1))); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' "$i" "$feat" "$part"
done >"$WORK/qemu-root/proc/cpuinfo"
VISIOND=("$QEMU" -cpu "$QCPU" -L "$WORK/qemu-root" "$BIN")
visiond() { "${VISIOND[@]}" "$@"; }

# A free port for the broker (x86_64 mosquitto).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
printf 'listener %s 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n' "$port" >"$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
broker_pid=$!

M="$PWD/models"
cat >"$WORK/visiond.yaml" <<YAML
node: arm
onnxruntime: $LIB
mqtt:
  url: mqtt://127.0.0.1:$port
models:
  - name: coco
    path: $M/ssd_mobilenet_v2_coco.onnx
    labels: $M/coco_labels.txt
    workers: 1
  - name: coco-int8
    path: $M/ssd_mobilenet_v2_coco_int8.onnx
    labels: $M/coco_labels.txt
    workers: 1
streams:
  - name: chelsea
    source: file://$MEDIA/chelsea.mp4
    model: coco-int8
    fps: 1
YAML

# check: the config, its stream's model loaded by the aarch64 ONNX Runtime.
if visiond check -c "$WORK/visiond.yaml" >"$WORK/check.log" 2>&1; then ok; else fail "visiond check:"; cat "$WORK/check.log" >&2; fi
# (check loads the models its streams use; bench below loads the float one)
check grep -q '^model coco-int8: detection on cpu, input 300x300 .*, 90 labels' "$WORK/check.log"
check grep -q '^stream chelsea: file://.* -> coco-int8' "$WORK/check.log"

# bench: a few frames through each model; a table with frames/s for both.
for m in coco coco-int8; do
  if visiond bench -c "$WORK/visiond.yaml" --model "$m" --layout 1x1 --batch 1 --frames 3 >"$WORK/bench-$m.log" 2>&1; then
    # a row for the layout asked, with a frame rate above zero
    check awk -F'|' -v m="$m" '$2 ~ "^ "m" $" && $3 ~ /1 x 1/ && $5 + 0 > 0 { found = 1 } END { exit !found }' "$WORK/bench-$m.log"
    echo "deb-arm64: bench $m (emulated $QCPU: not a device number):"; sed 's/^/  /' "$WORK/bench-$m.log"
  else
    fail "visiond bench --model $m:"; cat "$WORK/bench-$m.log" >&2
  fi
done

# eval: the int8 model agrees with the float one on held-out footage on this
# CPU too (Cortex-A72: no dot product; ARM's integer kernels widen, where x86
# without VNNI saturates). 12 frames of vtest.avi, some 80 objects.
if visiond eval -c "$WORK/visiond.yaml" --reference coco --variant coco-int8 --every 60 --frames 12 \
    --speed-frames 0 "$MEDIA/opencv/vtest.avi" >"$WORK/eval.log" 2>&1; then
  echo "deb-arm64: eval (emulated $QCPU):"; sed -n '1,/^cost on/p' "$WORK/eval.log" | sed 's/^/  /'
  # the row of every label together: enough objects, recall and precision >= 0.9
  check awk '$1 == "all" && $2 >= 50 && $(NF-1) >= 0.9 && $NF >= 0.9 { ok = 1 } END { exit !ok }' "$WORK/eval.log"
else
  fail "visiond eval:"; cat "$WORK/eval.log" >&2
fi

# run: the clip (4 s at 30 fps, one frame analysed a second) to the broker.
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
mosquitto_sub -h 127.0.0.1 -p "$port" -v -t 'visiond/arm/chelsea/#' -W 300 >"$WORK/mqtt.log" 2>&1 &
sub_pid=$!
sleep 0.5
"${VISIOND[@]}" run -c "$WORK/visiond.yaml" >"$WORK/run.log" 2>&1 &
daemon_pid=$!
# The stream says "stopped" at the clip's end (the daemon keeps running).
for _ in $(seq 600); do
  grep -Eq '/status .*"state": ?"stopped"' "$WORK/mqtt.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.5
done
if grep -Eq '/status .*"state": ?"stopped"' "$WORK/mqtt.log"; then ok; else fail "the stream did not reach its end"; fi
kill -TERM "$daemon_pid" 2>/dev/null || true
rc=0; wait "$daemon_pid" || rc=$?
daemon_pid=""
check [ "$rc" -eq 0 ]
kill "$sub_pid" 2>/dev/null || true; wait "$sub_pid" 2>/dev/null || true
# -a: the subscription also carries the snapshots' JPEG bytes.
frames="$(grep -ac '/detections ' "$WORK/mqtt.log" || true)"
cats="$(grep -a '/detections ' "$WORK/mqtt.log" | grep -ac '"label":"cat"' || true)"
echo "deb-arm64: run: $frames detections messages, $cats with a cat"
# One analysed frame a second of a 4 s clip: 4 messages, each with the cat.
check [ "$frames" -ge 3 ]
check [ "$cats" -eq "$frames" ]
if [ "$failed" -ne 0 ]; then
  echo "--- check.log"; cat "$WORK/check.log"
  echo "--- run.log"; tail -40 "$WORK/run.log"; echo "--- mqtt.log"; head -20 "$WORK/mqtt.log"
fi >&2
T_TEST=$((SECONDS - T0))
echo "deb-arm64: times: arm64 set-up ${T_SETUP} s, package (cross build) ${T_BUILD} s, emulated test ${T_TEST} s"
echo "deb-arm64: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
