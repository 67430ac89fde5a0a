#!/usr/bin/env bash
# The fresh-machine path, rehearsed: clones this repository's HEAD into a
# temporary folder and runs the README's two commands there, with an empty
# asset cache, as a new user would:
#   1. scripts/demo.sh, until its first detections message (then Ctrl-C),
#   2. scripts/test.sh.
# Every derived asset (converted and quantised models, media, venvs, reference
# outputs, the GStreamer registry, the build) is made again from nothing. Only
# the sha256-pinned downloads may come from $VISIOND_DOWNLOADS (default
# ~/.cache/visiond/downloads), which setup-assets.sh verifies before use;
# --cold takes those, pip's and npm's caches from nothing too.
# Prints each step's time; exits non-zero when a step fails. CI runs this.
#
#   scripts/rehearse.sh [--cold] [--keep]      --keep: leave the clone and cache
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
cold=""; keep=""
for a in "$@"; do
  case "$a" in
    --cold) cold=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: scripts/rehearse.sh [--cold] [--keep]" >&2; exit 2 ;;
  esac
done

ROOT="$(mktemp -d "${TMPDIR:-/var/tmp}/visiond-rehearsal.XXXXXX")"
demo_pid=""
cleanup() {
  [ -n "$demo_pid" ] && kill -INT -- "-$demo_pid" 2>/dev/null || true
  if [ -n "$keep" ]; then echo "rehearse: kept $ROOT"; else rm -rf "$ROOT"; fi
}
trap cleanup EXIT

export VISIOND_CACHE="$ROOT/cache"
unset GST_REGISTRY ORT_DYLIB_PATH VISIOND_MEDIA
if [ -n "$cold" ]; then
  export VISIOND_DOWNLOADS="$ROOT/downloads" PIP_NO_CACHE_DIR=1 npm_config_cache="$ROOT/npm"
else
  export VISIOND_DOWNLOADS="${VISIOND_DOWNLOADS:-$HOME/.cache/visiond/downloads}"
fi
times=()
step() { times+=("$(printf '%-34s %5d s' "$1" "$2")"); echo "rehearse: $1: $2 s"; }

T=$SECONDS
git clone --quiet --no-hardlinks "$SRC" "$ROOT/visiond"
step "clone" $((SECONDS - T))
cd "$ROOT/visiond"
echo "rehearse: $(git log -1 --format='%h %s') in $PWD, cache $VISIOND_CACHE (empty), downloads $VISIOND_DOWNLOADS"

# 1. The demo, in its own process group so that Ctrl-C (SIGINT) reaches all of it.
T=$SECONDS
log="$ROOT/demo.log"
setsid scripts/demo.sh >"$log" 2>&1 </dev/null &
demo_pid=$!
# The set-up and the release build come first: allow them an hour.
until grep -aq '^visiond/[^ ]*/detections {' "$log"; do
  if ! kill -0 "$demo_pid" 2>/dev/null; then
    tail -40 "$log" >&2; echo "rehearse: the demo stopped before its first detections message" >&2; exit 1
  fi
  if ((SECONDS - T > 3600)); then
    tail -40 "$log" >&2; echo "rehearse: no detections message from the demo within an hour" >&2; exit 1
  fi
  sleep 1
done
step "demo: first detections message" $((SECONDS - T))
sleep 5 # a few more messages, snapshots among them
kill -INT -- "-$demo_pid"
wait "$demo_pid" || true
demo_pid=""
grep -a '^visiond/' "$log" | head -8 | cut -c1-200 | sed 's/^/  /'
# The terminal shows text only: snapshots as one line each, never JPEG bytes.
if LC_ALL=C grep -aq $'\xff\xd8\xff' "$log"; then
  echo "rehearse: the demo printed raw JPEG bytes" >&2; exit 1
fi

# 2. The tests, on the same machine (the set-up now costs seconds).
T=$SECONDS
tlog="$ROOT/test.log"
set +e
scripts/test.sh 2>&1 | tee "$tlog"
rc=${PIPESTATUS[0]}
set -e
step "tests (scripts/test.sh)" $((SECONDS - T))
echo "rehearse: step times"
printf '  %s\n' "${times[@]}"
grep -E '^setup-assets: ready in' "$log" "$tlog" | sed 's/^[^:]*:/  /' || true
# The test runner's closing line last.
grep -E '^tests: [0-9]+ passed, [0-9]+ failed' "$tlog" | tail -1 || true
exit "$rc"
