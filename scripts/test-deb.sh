#!/usr/bin/env bash
# Installs the Debian package on this machine (root), checks the installed
# example config with the installed binary and verifies the installed unit,
# then removes the package. Prints "deb: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
deb="$(scripts/package.sh | tail -1)"
passed=0; failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "deb: FAILED: $*" >&2; fi; }
dpkg -i "$deb" >/dev/null
install -d /var/lib/visiond/models
install -m 644 models/ssd_mobilenet_v2_coco.onnx models/ssd_mobilenet_v2_coco_int8.onnx models/coco_labels.txt /var/lib/visiond/models/
# The installed binary finds the packaged ONNX Runtime by itself.
check env -u ORT_DYLIB_PATH -u VISIOND_CACHE HOME=/nonexistent /usr/bin/visiond check -c /etc/visiond/visiond.yaml
check systemd-analyze verify /lib/systemd/system/visiond.service
score="$(systemd-analyze security --offline=true /lib/systemd/system/visiond.service 2>&1 | awk '/Overall exposure level/ {print $(NF-2)}')"
echo "deb: systemd-analyze security: $score"
check awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'
dpkg -r visiond >/dev/null
rm -rf /var/lib/visiond/models
echo "deb: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
