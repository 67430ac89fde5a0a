"""Reference outputs from Python onnxruntime, for tests/reference.rs.

For each photograph and model: the RGB pixels at the model's input size
(PIL, bilinear), the input tensor built with numpy, and every output of
onnxruntime's own run on that tensor, all as raw little-endian float32 (or
uint8 pixels), listed in manifest.json. The Rust side rebuilds the tensor
from the same pixels with its own pre-processing and compares both.

    python ref_outputs.py MODELS_DIR MEDIA_DIR OUT_DIR [FLOAT_NCHW_MODEL]
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

import ortcpu

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
PHOTOS = ["chelsea", "coffee", "astronaut"]


def session(path: str):
    # As the daemon sets its sessions up on this CPU (ortcpu.py).
    return ortcpu.session(path, threads=1)


def main(models: str, media: str, out: str, float_model: str | None) -> None:
    os.makedirs(out, exist_ok=True)
    specs = [
        ("ssd", os.path.join(models, "ssd_mobilenet_v2_coco.onnx"), 300, "u8-nhwc"),
        ("effnet", os.path.join(models, "efficientnet_lite0.onnx"), 224, "u8-nhwc"),
    ]
    if float_model:
        specs.append(("float", float_model, 224, "f32-nchw"))
    cases = []
    for tag, path, size, kind in specs:
        sess = session(path)
        (inp,) = sess.get_inputs()
        for photo in PHOTOS:
            case = f"{tag}-{photo}"
            rgb = np.asarray(
                Image.open(os.path.join(media, f"{photo}.png")).convert("RGB").resize((size, size), Image.BILINEAR),
                dtype=np.uint8,
            )
            rgb.tofile(os.path.join(out, f"{case}.rgb"))
            if kind == "u8-nhwc":
                tensor = rgb[None]
            else:
                tensor = ((rgb.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)
            tensor.astype(np.float32).tofile(os.path.join(out, f"{case}.in.f32"))
            outputs = []
            for k, (meta, value) in enumerate(zip(sess.get_outputs(), sess.run(None, {inp.name: tensor}))):
                name = f"{case}.out{k}.f32"
                np.asarray(value).astype(np.float32).tofile(os.path.join(out, name))
                outputs.append({"name": meta.name, "shape": list(np.asarray(value).shape), "file": name})
            cases.append(
                {
                    "case": case,
                    "model": path,
                    "kind": kind,
                    "size": size,
                    "rgb": f"{case}.rgb",
                    "input": f"{case}.in.f32",
                    "outputs": outputs,
                }
            )
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"onnxruntime": ort.__version__, "cases": cases}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
