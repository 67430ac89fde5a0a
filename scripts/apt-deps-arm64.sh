#!/usr/bin/env bash
# What building and testing the arm64 package needs on an x86_64 Debian 12
# machine (root or sudo). Idempotent: a second run checks and costs seconds.
#   - dpkg multiarch arm64, the cross C toolchain (ring, the -sys crates' probes),
#   - GStreamer's arm64 development files (pkg-config for the -sys crates);
#     Debian 12's libgstreamer-plugins-base1.0-dev is not Multi-Arch: same, so
#     its :arm64 and :amd64 copies cannot be installed together (installing one
#     removes the other): its files are unpacked into $VISIOND_CACHE/arm64-dev
#     instead, with pkg-config files pointing there (PKG_CONFIG_LIBDIR, see
#     scripts/package.sh), and nothing of the machine's amd64 set-up is removed,
#   - the arm64 GStreamer run-time plugins and qemu-user, to run the
#     packaged binary under emulation (scripts/test-deb-arm64.sh),
#   - rustup's aarch64-unknown-linux-gnu standard library.
set -euo pipefail
die() { echo "apt-deps-arm64: error: $*" >&2; exit 1; }
[ "$(dpkg --print-architecture)" = amd64 ] || die "this cross set-up is for an amd64 (x86_64) Debian machine, not $(dpkg --print-architecture)"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
PKGS=(
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
  libgstreamer1.0-dev:arm64 liborc-0.4-dev:arm64 libgstreamer-plugins-base1.0-0:arm64
  libgstreamer1.0-0:arm64 gstreamer1.0-plugins-base:arm64 gstreamer1.0-plugins-good:arm64
  gstreamer1.0-plugins-bad:arm64 gstreamer1.0-libav:arm64
)
# Never through dpkg: its :arm64 copy replaces the :amd64 one the x86_64 build needs.
if dpkg-query -W -f='${Status}' libgstreamer-plugins-base1.0-dev:arm64 2>/dev/null | grep -q "install ok installed"; then
  die "libgstreamer-plugins-base1.0-dev:arm64 is installed, which removed or will remove the amd64 one:
  apt-get install libgstreamer-plugins-base1.0-dev:amd64 libgstrtspserver-1.0-dev:amd64 (this script unpacks the arm64 one instead)"
fi
updated=""
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  updated=1
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "apt-deps-arm64: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" \
    || die "apt-get could not install ${missing[*]} without removing a package (a multiarch conflict or a version skew between :amd64 and :arm64: apt-get upgrade first; see the lines above)"
elif [ -n "$updated" ]; then
  $SUDO apt-get update -qq
fi
# libgstreamer-plugins-base1.0-dev:arm64, unpacked (the version of the
# installed arm64 libraries; apt checks the archive's signature).
DEV="${VISIOND_CACHE:-$HOME/.cache/visiond}/arm64-dev"
ver="$(dpkg-query -W -f='${Version}' libgstreamer-plugins-base1.0-0:arm64)"
if [ "$(cat "$DEV/.visiond-stamp" 2>/dev/null)" != "$ver" ]; then
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt-get download runs as _apt where it can
  (cd "$tmp" && apt-get download -qq "libgstreamer-plugins-base1.0-dev:arm64=$ver") >&2 \
    || die "apt-get download libgstreamer-plugins-base1.0-dev:arm64=$ver failed"
  dpkg-deb -x "$tmp"/libgstreamer-plugins-base1.0-dev_*_arm64.deb "$tmp/x"
  rm -rf "$DEV.new"; mkdir -p "$DEV.new/lib" "$DEV.new/pkgconfig"
  mv "$tmp/x/usr/include" "$DEV.new/include"
  for so in "$tmp"/x/usr/lib/aarch64-linux-gnu/*.so; do
    # lib*.so -> lib*.so.0, the installed arm64 library
    real="/usr/lib/aarch64-linux-gnu/$(readlink "$so")"
    [ -e "$real" ] || die "$so points to $real, which libgstreamer-plugins-base1.0-0:arm64 should have installed"
    ln -s "$real" "$DEV.new/lib/$(basename "$so")"
  done
  for pc in "$tmp"/x/usr/lib/aarch64-linux-gnu/pkgconfig/*.pc; do
    sed -e "s|^libdir=.*|libdir=$DEV/lib|" -e "s|^includedir=.*|includedir=$DEV/include/gstreamer-1.0|" \
      "$pc" >"$DEV.new/pkgconfig/$(basename "$pc")"
  done
  echo "$ver" >"$DEV.new/.visiond-stamp"
  rm -rf "$DEV"; mv "$DEV.new" "$DEV"
fi
command -v rustup >/dev/null || die "rustup is needed for the aarch64 standard library (https://rustup.rs)"
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu >&2
