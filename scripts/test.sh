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
# The test build has fault injection (VISIOND_FAULT); release builds do not.
cargo clippy --all-targets --features test-support -- -D warnings
# The Debian package, installed and checked (needs root: CI is).
if [ "$(id -u)" -eq 0 ]; then scripts/test-deb.sh; else echo "deb: skipped (not root)"; fi
# The arm64 package, cross-built and run under qemu-user (root: multiarch apt
# set-up; x86_64 hosts only). About 2.5 min with the cross build cached in
# target/, 6-7 min on a clean clone (scripts/test-deb-arm64.sh prints its times).
if [ "$(id -u)" -ne 0 ]; then echo "deb-arm64: skipped (not root)"
elif [ "$(dpkg --print-architecture)" != amd64 ]; then echo "deb-arm64: skipped (not an amd64 host)"
else scripts/test-deb-arm64.sh; fi
log="$(mktemp)"
set +e
cargo test --features test-support 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line for every test binary together.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$rc"
