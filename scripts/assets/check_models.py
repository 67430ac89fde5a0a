#!/usr/bin/env python3
"""Checks the converted models on real photographs with Python onnxruntime.

Run by scripts/setup-assets.sh with $VISIOND_CACHE/venv-ref's Python:

    check_models.py MODELS_DIR MEDIA_DIR ORT_LIB

- the extracted libonnxruntime.so loads and reports the pinned version;
- each model's inputs/outputs (name, shape, dtype) are printed;
- SSD-MobileNetV2 (uint8 NHWC, any size; fed 300x300): chelsea -> cat (COCO id 17,
  column 16) > 0.5, coffee -> cup > 0.5, astronaut -> person > 0.5 (the conversion);
- its int8 variant: the same inputs and outputs, and the same top label on each
  photograph. How closely it agrees is measured on held-out footage, not here
  (agreement.py): a score on three photographs is no measure of that;
- EfficientNet-Lite0 (uint8 NHWC 224x224, uint8 softmax / 256): chelsea -> a
  cat (tabby, tiger cat, Egyptian cat), coffee -> espresso.
Exits 1 with a message on the first failure.
"""
import ctypes
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

from ortcpu import session

ORT_VERSION = "1.31.1"
CATS = {"tabby", "tiger cat", "Egyptian cat"}
SSD_EXPECT = {"chelsea": "cat", "coffee": "cup", "astronaut": "person"}
EFF_EXPECT = {"chelsea": CATS, "coffee": {"espresso"}}

failures = []


def check(ok, msg):
    if not ok:
        failures.append(msg)
        print(f"  FAIL: {msg}")


def lib_version(path):
    """OrtGetApiBase()->GetVersionString(), straight from the shared library."""

    class ApiBase(ctypes.Structure):
        _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p))]

    lib = ctypes.CDLL(path)
    lib.OrtGetApiBase.restype = ctypes.POINTER(ApiBase)
    return lib.OrtGetApiBase().contents.GetVersionString().decode()


def describe(name, sess):
    print(f"{name}:")
    for kind, args in (("in ", sess.get_inputs()), ("out", sess.get_outputs())):
        for a in args:
            print(f"  {kind} {a.name!r} {a.type} {a.shape}")


def load_labels(path, n):
    labels = open(path, encoding="utf-8").read().splitlines()
    check(len(labels) == n, f"{path}: {len(labels)} lines, expected {n}")
    return labels


def rgb(media, photo, w, h):
    img = Image.open(os.path.join(media, photo + ".png")).convert("RGB")
    return np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)[None]


def check_ssd(name, ssd, coco, media, min_score):
    describe(name, ssd)
    s_in = ssd.get_inputs()[0].name
    s_out = [o.name for o in ssd.get_outputs()]
    check(s_in == "image_tensor:0", f"{name}: input is {s_in!r}")
    check(s_out == ["Postprocessor/Slice:0", "Postprocessor/ExpandDims_1:0"], f"{name}: outputs are {s_out}")
    for photo, want in SSD_EXPECT.items():
        t = time.perf_counter()
        scores, boxes = ssd.run(s_out, {s_in: rgb(media, photo, 300, 300)})
        ms = (time.perf_counter() - t) * 1e3
        check(scores.shape == (1, 1917, 90) and boxes.shape == (1, 1917, 1, 4),
              f"{name}: output shapes {scores.shape} {boxes.shape}")
        anchor, col = np.unravel_index(np.argmax(scores[0]), scores[0].shape)
        score = float(scores[0, anchor, col])
        ymin, xmin, ymax, xmax = (float(x) for x in boxes[0, anchor, 0])
        print(f"  {photo}: {coco[col]} (id {col + 1}, column {col}) {score:.3f} at anchor {anchor}, "
              f"box ymin={ymin:.3f} xmin={xmin:.3f} ymax={ymax:.3f} xmax={xmax:.3f}  [{ms:.0f} ms]")
        check(coco[col] == want and score > min_score,
              f"{name} on {photo}: {coco[col]} {score:.3f}, expected {want} > {min_score}")


def main():
    models, media, lib = sys.argv[1:4]

    v = lib_version(lib)
    print(f"{lib}: ONNX Runtime {v}")
    check(v == ORT_VERSION, f"{lib} reports {v}, expected {ORT_VERSION}")
    check(ort.__version__ == ORT_VERSION, f"Python onnxruntime is {ort.__version__}, expected {ORT_VERSION}")

    coco = load_labels(os.path.join(models, "coco_labels.txt"), 90)
    check(coco[16] == "cat" and coco[0] == "person", "coco_labels.txt: line 0 must be person, line 16 cat")
    imagenet = load_labels(os.path.join(models, "imagenet_labels.txt"), 1000)
    check(imagenet[281] == "tabby", "imagenet_labels.txt: line 281 must be tabby")

    # The int8 model must answer like the float one: same inputs, outputs, top labels.
    for name, min_score in (("ssd_mobilenet_v2_coco.onnx", 0.5), ("ssd_mobilenet_v2_coco_int8.onnx", 0.0)):
        check_ssd(name, session(os.path.join(models, name)), coco, media, min_score)

    eff = session(os.path.join(models, "efficientnet_lite0.onnx"))
    describe("efficientnet_lite0.onnx", eff)
    e_in = eff.get_inputs()[0].name
    for photo in SSD_EXPECT:
        t = time.perf_counter()
        (probs,) = eff.run(None, {e_in: rgb(media, photo, 224, 224)})
        ms = (time.perf_counter() - t) * 1e3
        check(probs.shape == (1, 1000) and probs.dtype == np.uint8, f"EfficientNet output {probs.dtype} {probs.shape}")
        top = np.argsort(-probs[0].astype(np.int32), kind="stable")[:3]
        desc = ", ".join(f"{imagenet[i]} ({i}) {probs[0, i] / 256:.3f}" for i in top)
        print(f"  {photo}: {desc}  [{ms:.0f} ms]")
        if photo in EFF_EXPECT:
            check(imagenet[top[0]] in EFF_EXPECT[photo],
                  f"EfficientNet on {photo}: top-1 {imagenet[top[0]]}, expected one of {sorted(EFF_EXPECT[photo])}")

    if failures:
        print(f"check_models: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("check_models: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
