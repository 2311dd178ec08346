"""A tiny VNN-COMP-style benchmark: a 2-2-2 ONNX net, a property that holds on it and one that is violated."""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BOX = """\
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (>= X_0 0))
(assert (<= X_0 1))
(assert (>= X_1 0))
(assert (<= X_1 1))
"""
# y0 = relu(x0 - x1) <= 1 on the box, y1 = relu(x1 - x0) + 0.25; y0 >= y1 + 0.5 at x = (1, 0) only nearby.
HOLDS = BOX + "(assert (>= Y_0 1.5))\n"
VIOLATED = BOX + "(assert (or (>= Y_0 2) (>= Y_0 (+ Y_1 0.5))))\n"


def write_net(path: Path) -> None:
    def const(name, values):
        return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)

    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1),
    ]
    inits = [
        const("W1", [[1, -1], [-1, 1]]),
        const("b1", [0, 0]),
        const("W2", [[1, 0], [0, 1]]),
        const("b2", [0, 0.25]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, str(path))
