#!/usr/bin/env bash
# Sets up everything (idempotent), starts a local broker when none listens on
# 127.0.0.1:1883, runs visiond on pipelines/demo.yaml and prints what it
# publishes. Ctrl-C stops it. DEMO_SECONDS=N stops it after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-deps.sh
scripts/setup-assets.sh
export VISIOND_CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
export VISIOND_MEDIA="$VISIOND_CACHE/media"
export GST_REGISTRY="${GST_REGISTRY:-$VISIOND_CACHE/gst-registry.bin}"
cargo build --release --quiet

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "demo: starting mosquitto on 127.0.0.1:1883"
  /usr/sbin/mosquitto -p 1883 >/dev/null 2>&1 & pids+=($!)
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
fi

# Every message as text; the snapshots are JPEG bytes, so a second
# subscriber shows each as one line with its size instead.
mosquitto_sub -h 127.0.0.1 -p 1883 -v -t 'visiond/#' -T 'visiond/+/+/snapshot/+' & pids+=($!)
mosquitto_sub -h 127.0.0.1 -p 1883 -t 'visiond/+/+/snapshot/+' -F '%t <JPEG, %l bytes>' & pids+=($!)
target/release/visiond run -c pipelines/demo.yaml & daemon=$!; pids+=($daemon)
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"; kill -TERM "$daemon"; wait "$daemon" || true; sleep 0.5
else
  wait "$daemon"
fi
