#!/usr/bin/env python3
"""Compresses SSD-MobileNetV2 to 8-bit integers with onnxruntime's static quantisation.

Run by scripts/setup-assets.sh with $VISIOND_CACHE/venv-ref's Python:

    quantize.py [--8bit-weights] FLOAT.onnx OUT.onnx CALIB.rgb PHOTO...

--8bit-weights builds the test's control: the full 8-bit weights this project
once shipped, right with VNNI and wrong without (tests/int8_cpus.rs uses it
to prove that the emulated CPU really takes the path without VNNI).

CALIB.rgb holds raw 300x300 RGB frames (decoded by GStreamer, as the daemon
feeds the model); each PHOTO is resized to 300x300 the same way. The
calibration footage (OpenCV's Megamind.avi and sample photographs) is not the
evaluation footage (vtest.avi), so the agreement the evaluation reports is
not measured on the frames the ranges were fitted to.

The choices, measured on this project's machine (docs/BENCHMARKS.md,
"Compression"):
- QDQ, uint8 activations, per-channel int8 weights: MLAS runs u8 x s8 with
  VNNI; int8 activations (S8S8) ran slower than the float model;
- Conv nodes only: quantising every op type was no faster (each extra
  Quantize/Dequantize pair costs what the integer op saves);
- every Conv quantised, the first layer and the box head included: keeping
  them float cost 5 % of the speed and bought no agreement;
- MinMax calibration: Percentile and Entropy were no closer to the float
  model, and Entropy takes minutes;
- 7-bit weights (reduce_range): x86 without VNNI multiplies u8 x s8 with
  VPMADDUBSW, whose 16-bit pair sums saturate with 8-bit weights (on an AVX2
  EPYC the cat photo became a keyboard, and vtest.avi's people vanished); with
  7 bits they cannot, the VNNI and the AVX2 paths give the very same
  detections, and the agreement with the float model stayed at 0.96-0.98.
"""
import sys
import tempfile

import numpy as np
from PIL import Image
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

SIZE = 300


class Frames(CalibrationDataReader):
    def __init__(self, name, frames):
        self.feeds = iter({name: f[None]} for f in frames)

    def get_next(self):
        return next(self.feeds, None)


def calibration(raw, photos):
    data = np.fromfile(raw, dtype=np.uint8)
    if data.size == 0 or data.size % (SIZE * SIZE * 3):
        sys.exit(f"quantize: {raw}: {data.size} bytes is not a whole number of {SIZE}x{SIZE} RGB frames")
    frames = list(data.reshape(-1, SIZE, SIZE, 3))
    for p in photos:
        img = Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        frames.append(np.asarray(img, dtype=np.uint8))
    return frames


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    args = sys.argv[1:]
    full_range = args[0] == "--8bit-weights"
    src, out, raw, *photos = args[1:] if full_range else args
    frames = calibration(raw, photos)
    print(f"quantize: {len(frames)} calibration frames")
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference and graph clean-up first, as onnxruntime advises; the
        # symbolic pass fails on the Loop that resizes inside the graph.
        pre = f"{tmp}/pre.onnx"
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        quantize_static(
            pre,
            out,
            Frames("image_tensor:0", frames),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.MinMax,
            reduce_range=not full_range,
        )
    print(f"quantize: wrote {out}")


if __name__ == "__main__":
    main()
