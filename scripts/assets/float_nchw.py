"""Builds a real float NCHW classifier from EfficientNet-Lite0 (uint8 NHWC).

The new input `input` is float32 [1, 3, 224, 224] holding ImageNet-normalised
pixels, (pixel - mean) / std; the graph undoes that, rounds to uint8, goes
NHWC and runs the original weights. The output `probs` is float32 [1, 1000].
visiond's float NCHW mean/std path is tested end to end with it.

    python float_nchw.py efficientnet_lite0.onnx effnet_float_nchw.onnx
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32).reshape(1, 3, 1, 1)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32).reshape(1, 3, 1, 1)


def main(src: str, dst: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    (old_input,) = [i for i in graph.input if i.name == "images"]
    (old_output,) = [o for o in graph.output if o.name == "Softmax"]

    inits = [
        numpy_helper.from_array(STD, "vd_std"),
        numpy_helper.from_array(MEAN, "vd_mean"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "vd_lo"),
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "vd_hi"),
        numpy_helper.from_array(np.array(1.0 / 256.0, dtype=np.float32), "vd_scale"),
        numpy_helper.from_array(np.array([0, 1, 2], dtype=np.int64), "vd_channels"),
    ]
    front = [
        helper.make_node("Mul", ["input", "vd_std"], ["vd_scaled"]),
        helper.make_node("Add", ["vd_scaled", "vd_mean"], ["vd_pixels"]),
        helper.make_node("Round", ["vd_pixels"], ["vd_rounded"]),
        helper.make_node("Clip", ["vd_rounded", "vd_lo", "vd_hi"], ["vd_clipped"]),
        helper.make_node("Cast", ["vd_clipped"], ["vd_u8"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["vd_u8"], ["vd_nhwc"], perm=[0, 2, 3, 1]),
        # An identity Gather on the channels: without it onnxruntime's
        # optimiser cancels this Transpose against the graph's own and
        # computes the first convolution differently (outputs move by 1/256).
        helper.make_node("Gather", ["vd_nhwc", "vd_channels"], ["images"], axis=3),
    ]
    back = [
        helper.make_node("Cast", ["Softmax"], ["vd_quant"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["vd_quant", "vd_scale"], ["probs"]),
    ]
    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.input.remove(old_input)
    graph.input.insert(0, helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224]))
    graph.output.remove(old_output)
    graph.output.append(helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 1000]))
    onnx.checker.check_model(model)
    onnx.save(model, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
