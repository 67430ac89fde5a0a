#!/usr/bin/env bash
# scripts/fetch-ort.sh ARCH: the pinned ONNX Runtime library for ARCH (amd64,
# arm64; uname -m spellings too), from PyPI's onnxruntime wheel, sha256-checked,
# cached in ${VISIOND_CACHE:-$HOME/.cache/visiond}/onnxruntime-ARCH/.
# Prints the library's path. Idempotent: a cached copy is only checked.
# (scripts/setup-assets.sh fetches this machine's own into onnxruntime/.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "fetch-ort: error: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: scripts/fetch-ort.sh ARCH (amd64 or arm64)"
# shellcheck source=assets/ort-pins.sh
. "$ROOT/scripts/assets/ort-pins.sh"
ort_pins "$1" || die "no pinned ONNX Runtime wheel for $1 (amd64 and arm64 are pinned)"
case "$1" in x86_64 | amd64) arch=amd64 ;; *) arch=arm64 ;; esac
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
DIR="$CACHE/onnxruntime-$arch"
LIB="$DIR/libonnxruntime.so.$ORT_VERSION"
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f "$LIB" ] || [ "$(sha_of "$LIB")" != "$ORT_LIB_SHA" ]; then
  command -v python3 >/dev/null || die "python3 (with pip) is needed to download $ORT_WHEEL"
  command -v unzip >/dev/null || die "unzip is needed (scripts/apt-deps.sh installs it)"
  # The pinned downloads may live apart from the cache (setup-assets.sh).
  DL="${VISIOND_DOWNLOADS:-$CACHE/downloads}"
  mkdir -p "$DL" "$DIR"
  WHEEL="$DL/$ORT_WHEEL"
  if [ ! -f "$WHEEL" ] || [ "$(sha_of "$WHEEL")" != "$ORT_WHEEL_SHA" ]; then
    tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
    echo "fetch-ort: downloading $ORT_WHEEL" >&2
    PIP_DISABLE_PIP_VERSION_CHECK=1 python3 -m pip download --quiet --no-deps --dest "$tmp" \
      --only-binary=:all: --platform "$ORT_PLATFORM" --python-version 3.11 --implementation cp \
      "onnxruntime==$ORT_VERSION" >&2 || die "pip download onnxruntime==$ORT_VERSION ($ORT_PLATFORM) failed"
    [ -f "$tmp/$ORT_WHEEL" ] || die "pip download produced $(ls "$tmp"), not $ORT_WHEEL"
    got="$(sha_of "$tmp/$ORT_WHEEL")"
    [ "$got" = "$ORT_WHEEL_SHA" ] || die "sha256 mismatch for $ORT_WHEEL: pinned $ORT_WHEEL_SHA, got $got"
    mv "$tmp/$ORT_WHEEL" "$WHEEL"
  fi
  unzip -p "$WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" >"$LIB.tmp"
  got="$(sha_of "$LIB.tmp")"
  [ "$got" = "$ORT_LIB_SHA" ] || { rm -f "$LIB.tmp"; die "sha256 mismatch for libonnxruntime.so.$ORT_VERSION in $ORT_WHEEL: pinned $ORT_LIB_SHA, got $got"; }
  chmod 755 "$LIB.tmp"
  mv "$LIB.tmp" "$LIB"
fi
echo "$LIB"
