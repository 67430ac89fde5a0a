# Shared by the bench scripts: sourced, not run. Sets up a work folder and
# the processes (`pids`) stopped on exit.
CACHE="${VISIOND_CACHE:-$HOME/.cache/visiond}"
CLIP="$CACHE/media/photos.mp4"
[ -f "$CLIP" ] || { echo "run scripts/setup-assets.sh first" >&2; exit 1; }
# What the cameras serve (cameras): the photos clip, or CAMERA_CLIP (an
# H.264 MP4 of at least a minute: it is joined 3 times, not 81).
CAMERA_CLIP="${CAMERA_CLIP:-}"
work="$(mktemp -d)"; pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cameras N CONFIG: starts N RTSP cameras serving the long clip and appends a
# stream at `fps: 5` for each to CONFIG (STREAM_EXTRA: more fields for each,
# e.g. 'options: {decoder_threads: 1}'). Independent cameras send their key
# frames at unrelated moments; N copies of one file asked at once would send
# theirs all in the same instant. So camera i (from 0) starts i*1000/N ms
# after it is asked, which spreads the key frames (one a second) over the
# second.
cameras() {
  local long i port
  if [ -n "$CAMERA_CLIP" ]; then long="$(joined "$CAMERA_CLIP")" || exit 1; else long="$(long_clip)"; fi
  for i in $(seq "$1"); do
    port="$(free_port)"
    target/release/examples/rtsp-server --port "$port" --file "$long" \
      --delay-ms $(( (i - 1) * 1000 / $1 )) > /dev/null & pids+=($!)
    echo "  - {name: cam$i, source: \"rtsp://127.0.0.1:$port/cam\", model: coco, fps: 5${STREAM_EXTRA:+, $STREAM_EXTRA}}" >> "$2"
  done
  sleep 0.5
}

# long_clip: prints the path of the photos clip (9 s) joined 81 times
# (12 min 9 s), made once without re-encoding, so an RTSP camera serving it
# runs through a whole benchmark without ending.
long_clip() {
  local long="$CACHE/media/photos-x81.mp4" in="$CLIP" i
  if [ ! -f "$long" ]; then
    for i in 3 9 27 81; do
      triple "$in" "$CACHE/media/.photos-x$i.mp4"
      [ "$in" = "$CLIP" ] || rm -f "$in"
      in="$CACHE/media/.photos-x$i.mp4"
    done
    mv "$in" "$long"
  fi
  echo "$long"
}

# joined CLIP: prints the path of CLIP joined 3 times, made again when CLIP
# is newer.
joined() {
  local out="$CACHE/media/.$(basename "$1" .mp4)-x3.mp4"
  if [ ! -f "$out" ] || [ "$1" -nt "$out" ]; then
    triple "$1" "$out.tmp" || return 1
    mv "$out.tmp" "$out"
  fi
  echo "$out"
}

# triple IN OUT: OUT is IN three times over (concat keeps the timestamps
# running). gst-launch links demuxer pads late and now and then loses that
# race, hence the retries.
triple() {
  local try
  for try in 1 2 3 4 5; do
    gst-launch-1.0 -q concat name=c ! h264parse ! mp4mux ! filesink location="$2" \
      filesrc location="$1" ! qtdemux ! video/x-h264 ! c. \
      filesrc location="$1" ! qtdemux ! video/x-h264 ! c. \
      filesrc location="$1" ! qtdemux ! video/x-h264 ! c. >/dev/null 2>&1 && return 0
  done
  echo "could not join $1 three times" >&2; return 1
}
