#!/usr/bin/env python3
"""How closely a variant of the SSD (the int8 one) agrees with the float model.

Run by scripts/setup-assets.sh with $VISIOND_CACHE/venv-ref's Python, and by
tests under qemu-x86_64 -cpu Haswell (a CPU without VNNI):

    agreement.py REFERENCE.onnx VARIANT.onnx FRAMES.rgb [--min 0.93] [--objects 200]
                 [--frames N] [--json OUT] [--fused]

FRAMES.rgb holds raw 300x300 RGB frames, decoded by GStreamer as the daemon
feeds the model: footage the variant was not calibrated on. Both models'
outputs are decoded as the daemon decodes them (best class per anchor, score
at or above 0.5, per-class non-maximum suppression at IoU 0.5), and matched as
`visiond eval` matches them (same label, IoU >= 0.5, greedily by overlap), the
reference's objects taken as the truth. Sessions are set up as the daemon's
on this CPU (ortcpu.py).

Exits 1 when recall or precision is below --min, or when the reference found
fewer than --objects objects (too little footage to judge), with a message
that says what was measured and what to do.
"""
import argparse
import json
import sys
import time

import numpy as np

from ortcpu import session

SIZE = 300
MIN_SCORE = 0.5
IOU = 0.5


def iou(a, b):
    """a, b: (ymin, xmin, ymax, xmax)."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decode(scores, boxes):
    """[(class, score, box)] as the daemon's SSD decoding gives them."""
    scores, boxes = scores[0], np.clip(boxes[0, :, 0, :], 0.0, 1.0)
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(cls)), cls]
    keep = np.flatnonzero(best >= MIN_SCORE)
    found = []
    for i in keep[np.argsort(-best[keep], kind="stable")]:
        b = tuple(float(x) for x in boxes[i])
        if all(c != cls[i] or iou(b, fb) <= IOU for c, _, fb in found):
            found.append((int(cls[i]), float(best[i]), b))
    return found


def match(ref, var):
    """Pairs matched one to one: same class, IoU >= 0.5, best overlaps first."""
    pairs = sorted(
        ((iou(a[2], b[2]), i, j) for i, a in enumerate(ref) for j, b in enumerate(var)
         if a[0] == b[0] and iou(a[2], b[2]) >= IOU),
        key=lambda p: -p[0],
    )
    used_r, used_v, n = set(), set(), 0
    for _, i, j in pairs:
        if i not in used_r and j not in used_v:
            used_r.add(i)
            used_v.add(j)
            n += 1
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference")
    ap.add_argument("variant")
    ap.add_argument("frames")
    ap.add_argument("--min", type=float, default=0.93, help="least recall and precision accepted")
    ap.add_argument("--objects", type=int, default=200, help="least reference objects to judge on")
    ap.add_argument("--frames", dest="limit", type=int, default=0, help="use the first N frames only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the counts here")
    ap.add_argument("--fused", action="store_true",
                    help="run the integer kernels even where they saturate (a test's negative control)")
    a = ap.parse_args()

    data = np.fromfile(a.frames, dtype=np.uint8)
    if data.size == 0 or data.size % (SIZE * SIZE * 3):
        sys.exit(f"agreement: {a.frames}: {data.size} bytes is not a whole number of {SIZE}x{SIZE} RGB frames")
    frames = data.reshape(-1, SIZE, SIZE, 3)
    if a.limit:
        frames = frames[: a.limit]
    ref, var = session(a.reference, a.threads, a.fused), session(a.variant, a.threads, a.fused)
    name = ref.get_inputs()[0].name
    outs = [o.name for o in ref.get_outputs()]
    counts = {"frames": 0, "reference": 0, "variant": 0, "matched": 0}
    t0 = time.perf_counter()
    for f in frames:
        r = decode(*ref.run(outs, {name: f[None]}))
        v = decode(*var.run(outs, {name: f[None]}))
        counts["frames"] += 1
        counts["reference"] += len(r)
        counts["variant"] += len(v)
        counts["matched"] += match(r, v)
    recall = counts["matched"] / max(counts["reference"], 1)
    precision = counts["matched"] / max(counts["variant"], 1)
    counts.update(recall=round(recall, 4), precision=round(precision, 4))
    print(
        f"agreement: {counts['frames']} frames, {counts['reference']} objects of the reference, "
        f"{counts['variant']} of the variant, {counts['matched']} matched: recall {recall:.3f}, "
        f"precision {precision:.3f} (least accepted {a.min:g}) [{time.perf_counter() - t0:.0f} s]"
    )
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(counts, f)
    if counts["reference"] < a.objects:
        print(f"agreement: only {counts['reference']} objects in {a.frames}, fewer than the {a.objects} "
              "needed to judge: give more footage", file=sys.stderr)
        return 1
    if min(recall, precision) < a.min:
        print(f"agreement: {a.variant} agrees with {a.reference} on recall {recall:.3f} / precision "
              f"{precision:.3f}, below {a.min:g}: this compressed model would miss or invent objects. "
              "It was not installed; run the float model, or look at the quantisation "
              "(scripts/assets/quantize.py) on this CPU", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
