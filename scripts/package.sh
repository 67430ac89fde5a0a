#!/usr/bin/env bash
# Builds the Debian package: target/debian/visiond_<version>_<arch>.deb, with
# the binary, the systemd unit, an example config and the ONNX Runtime
# library (the package's own copy, /usr/lib/visiond).
#
#   scripts/package.sh              for this machine (the set-up's ONNX Runtime)
#   scripts/package.sh --arch arm64 for 64-bit ARM boards, cross-built on an
#                                   x86_64 Debian 12 machine: the cross set-up
#                                   (scripts/apt-deps-arm64.sh), the aarch64
#                                   ONNX Runtime (scripts/fetch-ort.sh arm64)
# Prints the package's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "package: error: $*" >&2; exit 1; }
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
HOST="$(dpkg --print-architecture)"
ARCH="$HOST"
while (($#)); do
  case "$1" in
    --arch) [ $# -ge 2 ] || die "--arch needs a value (amd64, arm64)"; ARCH="$2"; shift 2 ;;
    --arch=*) ARCH="${1#--arch=}"; shift ;;
    *) die "unknown argument $1 (usage: scripts/package.sh [--arch arm64])" ;;
  esac
done
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if [ "$ARCH" = "$HOST" ]; then
  # The asset target/release/deb-extra/...: cargo-deb puts a --target build's
  # under target/<triple>/release/, so each architecture has its own copy.
  mkdir -p "$TARGET_DIR/release/deb-extra"
  cp -L "$CACHE/onnxruntime/libonnxruntime.so" "$TARGET_DIR/release/deb-extra/libonnxruntime.so"
  rm -f "$TARGET_DIR"/debian/visiond_*_"$ARCH".deb
  cargo deb --quiet 2>&1 | grep -v '^warning: .*license' >&2 || true
  ls "$TARGET_DIR"/debian/visiond_*_"$ARCH".deb
  exit 0
fi

[ "$ARCH" = arm64 ] && [ "$HOST" = amd64 ] \
  || die "cross packages: --arch arm64 on an amd64 machine only (asked $ARCH on $HOST)"
TRIPLE=aarch64-unknown-linux-gnu
scripts/apt-deps-arm64.sh
lib="$(scripts/fetch-ort.sh arm64)"
mkdir -p "$TARGET_DIR/$TRIPLE/release/deb-extra"
cp -L "$lib" "$TARGET_DIR/$TRIPLE/release/deb-extra/libonnxruntime.so"
# pkg-config answers for arm64 (the -sys crates), the cross linker and C
# compiler (ring); the same values every run, so cargo reuses the build.
export PKG_CONFIG_ALLOW_CROSS=1
# (libgstreamer-plugins-base1.0-dev:arm64 is unpacked in the cache: scripts/apt-deps-arm64.sh)
export PKG_CONFIG_LIBDIR="$CACHE/arm64-dev/pkgconfig:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
out="$TARGET_DIR/$TRIPLE/debian"
rm -f "$out"/visiond_*_arm64.deb "$TARGET_DIR"/debian/visiond_*_arm64.deb
# cargo-deb builds with --target (the binary asset target/release/visiond is
# read from target/aarch64-unknown-linux-gnu/release/) and writes the package
# to target/aarch64-unknown-linux-gnu/debian/.
cargo deb --quiet --target "$TRIPLE" 2>&1 | grep -v '^warning: .*license' >&2 || true
built="$(ls "$out"/visiond_*_arm64.deb 2>/dev/null | head -1)"
[ -n "$built" ] || die "cargo deb --target $TRIPLE made no package in $out"
# Where PRODUCT.md says: target/debian/visiond_VERSION_arm64.deb, VERSION the
# package's (0.1.0-1), as for this machine's.
mkdir -p "$TARGET_DIR/debian"
deb="$TARGET_DIR/debian/$(basename "$built")"
[ -f "$deb" ] || cp "$built" "$deb"
echo "$deb"
