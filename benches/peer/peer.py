#!/usr/bin/env python3
"""The Python peer of issue 7: what a user would write instead of visiond.

GStreamer decodes and scales the clip to the model's size (RGB, 300x300),
onnxruntime runs SSD-MobileNetV2, numpy decodes and suppresses boxes, and
paho-mqtt publishes one JSON message per frame. Every frame is analysed: the
appsink holds the decoder back while inference is busy. Its best settings:
decoding runs in GStreamer's own thread with one decoder thread (frame
threading only adds CPU when inference holds every core), the CPU provider
with all graph optimisations, and either one session with one thread per
core or one single-thread session per core in worker threads (onnxruntime
releases the GIL while it runs); benches/peer.sh tries both and keeps the
faster.

  peer.py --clip C --model M --labels L --port P [--sessions N --threads T]
  peer.py --model M --model-only --sessions N --threads T --frames F
"""
import argparse
import itertools
import json
import os
import queue
import sys
import threading
import time

import numpy as np
import onnxruntime as ort


def nms(boxes, scores, iou):
    """Greedy non-maximum suppression; boxes are [ymin, xmin, ymax, xmax]."""
    order = np.argsort(-scores)
    keep = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        yy1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        xx1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        yy2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        xx2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(yy2 - yy1, 0, None) * np.clip(xx2 - xx1, 0, None)
        overlap = inter / (area[i] + area[rest] - inter + 1e-9)
        order = rest[overlap <= iou]
    return keep


def detect(scores, boxes, labels, min_score=0.5, iou=0.5):
    s = scores[0]
    b = boxes[0, :, 0, :]
    hits = np.argwhere(s > min_score)
    objects = []
    for c in np.unique(hits[:, 1]):
        anchors = hits[hits[:, 1] == c, 0]
        for k in nms(b[anchors], s[anchors, c], iou):
            a = anchors[k]
            ymin, xmin, ymax, xmax = (float(v) for v in b[a])
            objects.append({
                "label": labels[c], "label_id": int(c), "score": round(float(s[a, c]), 4),
                "box": {"x": xmin, "y": ymin, "w": xmax - xmin, "h": ymax - ymin},
            })
    objects.sort(key=lambda o: -o["score"])
    return objects


def sessions(model, n, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return [ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"]) for _ in range(n)]


def model_only(args):
    """The model alone, same layout: frames/s and CPU per frame."""
    ss = sessions(args.model, args.sessions, args.threads)
    inp = ss[0].get_inputs()[0].name
    x = np.random.default_rng(1).integers(0, 256, (1, 300, 300, 3), dtype=np.uint8)
    for s in ss:
        s.run(None, {inp: x})
    per = args.frames // len(ss)

    def work(s):
        for _ in range(per):
            s.run(None, {inp: x})

    cpu, t = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=work, args=(s,)) for s in ss]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    n = per * len(ss)
    wall = time.perf_counter() - t
    print(json.dumps({"fps": n / wall, "cpu_ms_per_frame": (time.process_time() - cpu) * 1e3 / n}))


def run(args):
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst
    import paho.mqtt.client as mqtt

    Gst.init(None)
    labels = [l.strip() for l in open(args.labels)]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"peer-{os.getpid()}")
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    ss = sessions(args.model, args.sessions, args.threads)
    inp = ss[0].get_inputs()[0].name
    pipeline = Gst.parse_launch(
        f"filesrc location={args.clip} ! decodebin ! videoscale ! videoconvert ! "
        "video/x-raw,format=RGB,width=300,height=300 ! appsink name=sink sync=false max-buffers=4"
    )
    sink = pipeline.get_by_name("sink")

    def one_decoder_thread(_bin, _sub, element):
        if element.find_property("max-threads") is not None:
            element.set_property("max-threads", 1)

    pipeline.connect("deep-element-added", one_decoder_thread)
    pipeline.set_state(Gst.State.PLAYING)
    topic = "peer/bench/clip/detections"
    frames = queue.Queue(maxsize=4)
    counter = itertools.count()  # next() is atomic under the GIL

    def analyse(s, frame, pts):
        scores, boxes = s.run(None, {inp: frame})
        msg = {"frame": next(counter), "pts_ns": pts, "objects": detect(scores, boxes, labels)}
        client.publish(topic, json.dumps(msg), qos=0)

    def worker(s):
        while (item := frames.get()) is not None:
            analyse(s, *item)

    # One session: inference in this thread. More: one worker thread each.
    workers = [threading.Thread(target=worker, args=(s,), daemon=True) for s in ss] if len(ss) > 1 else []
    for w in workers:
        w.start()
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:  # end of the clip: from the start again, as visiond's loop does
            pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0)
            continue
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        frame = np.frombuffer(info.data, np.uint8).reshape(1, 300, 300, 3).copy()
        buf.unmap(info)
        if not workers:
            analyse(ss[0], frame, buf.pts)
        else:
            frames.put((frame, buf.pts))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clip")
    p.add_argument("--model", required=True)
    p.add_argument("--labels")
    p.add_argument("--port", type=int)
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--model-only", action="store_true")
    p.add_argument("--frames", type=int, default=600)
    args = p.parse_args()
    if args.model_only:
        model_only(args)
    else:
        run(args)


if __name__ == "__main__":
    sys.exit(main())
