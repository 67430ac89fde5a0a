#!/usr/bin/env bash
# Motion against whole frames: CPU per camera at `fps: 5` on three scenes,
# N RTSP cameras (720p30 H.264 from gst-rtsp-server, no re-encoding) each,
# through the daemon and a real broker; motion off and on measured one
# after the other on the same machine, so compare the ratio.
#   still:   the set-up's still.mp4 (a photograph with camera-like noise and
#            a person standing)
#   walking: OpenCV's vtest.avi (people walking), scaled to 1280x720
#   busy:    four vtest.avi side by side (2x2), people everywhere
# Per run: analysed frames/s, model inputs/s (whole frames and regions),
# frames dropped, the daemon's CPU (% of one core) per camera, measured
# over WINDOW seconds after WARM (default 15: a person standing counts as
# stationary, and is checked every 5 s instead of every frame, only after
# standing 10 s).
#   [N=4] [WINDOW=20] [WARM=15] [MODEL=PATH] benches/motion.sh [SCENE...]
set -euo pipefail
cd "$(dirname "$0")/.."
SCENES=("$@"); [ $# -eq 0 ] && SCENES=(still walking busy)
N="${N:-4}"; WINDOW="${WINDOW:-20}"; WARM="${WARM:-15}"
MODEL="${MODEL:-$PWD/models/ssd_mobilenet_v2_coco_int8.onnx}"
. benches/lib.sh
cargo build --release --quiet --example rtsp-server --bin visiond

# scene_clip NAME: the clip of a scene, made once from the set-up's media.
scene_clip() {
  local vtest="$CACHE/media/opencv/vtest.avi" out="$CACHE/media/.bench-$1.mp4"
  local enc=(x264enc speed-preset=veryfast key-int-max=30 bframes=0 bitrate=4000 ! video/x-h264,profile=main ! h264parse ! mp4mux)
  case "$1" in
    still) echo "$CACHE/media/still.mp4"; return ;;
    walking)
      [ -f "$out" ] || gst-launch-1.0 -q filesrc location="$vtest" ! decodebin ! videoconvert ! videoscale ! videorate \
        ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! "${enc[@]}" ! filesink location="$out.tmp" >&2 \
        || return 1 ;;
    busy)
      [ -f "$out" ] || gst-launch-1.0 -q compositor name=m \
          sink_1::xpos=640 sink_2::ypos=360 sink_3::xpos=640 sink_3::ypos=360 \
        ! videoconvert ! videorate ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! "${enc[@]}" \
        ! filesink location="$out.tmp" \
        filesrc location="$vtest" ! decodebin ! videoscale ! video/x-raw,width=640,height=360 ! m. \
        filesrc location="$vtest" ! decodebin ! videoflip method=horizontal-flip ! videoscale ! video/x-raw,width=640,height=360 ! m. \
        filesrc location="$vtest" ! decodebin ! videoflip method=vertical-flip ! videoscale ! video/x-raw,width=640,height=360 ! m. \
        filesrc location="$vtest" ! decodebin ! videoflip method=rotate-180 ! videoscale ! video/x-raw,width=640,height=360 ! m. >&2 \
        || return 1 ;;
    *) echo "unknown scene $1" >&2; return 1 ;;
  esac
  [ -f "$out" ] || mv "$out.tmp" "$out"
  echo "$out"
}

metric() { curl -s "http://$http/metrics" | awk -v m="$1" '$1 ~ "^"m"[{ ]" || $1 == m {s+=$2} END {print s+0}'; }

echo "| scene | motion | analysed frames/s | model inputs/s | dropped | CPU % per camera |"
echo "|---|---|---|---|---|---|"
for scene in "${SCENES[@]}"; do
  CAMERA_CLIP="$(scene_clip "$scene")" || { echo "could not make the $scene clip" >&2; exit 1; }
  for motion in false true; do
    MQTT="$(free_port)"; http="127.0.0.1:$(free_port)"
    /usr/sbin/mosquitto -p "$MQTT" >/dev/null 2>&1 & pids+=($!)
    {
      echo "node: motion"; echo "mqtt: {url: \"mqtt://127.0.0.1:$MQTT\"}"
      echo "http: {listen: \"$http\"}"
      echo "models:"; echo "  - {name: coco, path: $MODEL, labels: $PWD/models/coco_labels.txt}"
      echo "streams:"
    } > "$work/c.yaml"
    STREAM_EXTRA="motion: $motion, snapshots: false" cameras "$N" "$work/c.yaml"
    target/release/visiond run -c "$work/c.yaml" 2>"$work/log" & daemon=$!; pids+=($daemon)
    sleep "$WARM"
    a0="$(metric visiond_frames_analysed_total)"; i0="$(metric visiond_model_inputs_total)"
    d0="$(metric visiond_frames_dropped_total)"; t0="$(awk '{print $14+$15}' /proc/$daemon/stat)"
    sleep "$WINDOW"
    t1="$(awk '{print $14+$15}' /proc/$daemon/stat)"; a1="$(metric visiond_frames_analysed_total)"
    i1="$(metric visiond_model_inputs_total)"; d1="$(metric visiond_frames_dropped_total)"
    python3 -c "
n, w = $N, $WINDOW
print(f'| $scene | ' + ('on' if '$motion' == 'true' else 'off') + f' | {($a1-$a0)/w:.1f} | {($i1-$i0)/w:.1f} | {$d1-$d0:.0f} | {($t1-$t0)/100/w*100/n:.1f} |')"
    stop_all
  done
done
