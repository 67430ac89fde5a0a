#!/usr/bin/env bash
# Sets up everything the tests need (idempotent), then runs the checks and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-deps.sh
scripts/setup-assets.sh
export VISIOND_CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
# GStreamer keeps its plugin registry in a writable file.
export GST_REGISTRY="${GST_REGISTRY:-$VISIOND_CACHE/gst-registry.bin}"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
