#!/usr/bin/env bash
# Builds the Debian package: target/debian/visiond_<version>_<arch>.deb, with
# the binary, the systemd unit, an example config and the ONNX Runtime
# library the set-up fetched (the package's own copy, /usr/lib/visiond).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
mkdir -p target/deb-extra
cp -L "$CACHE/onnxruntime/libonnxruntime.so" target/deb-extra/libonnxruntime.so
cargo deb --quiet 2>&1 | grep -v '^warning: .*license' >&2 || true
ls target/debian/visiond_*.deb
