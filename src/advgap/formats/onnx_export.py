"""Export a ReluNet as ONNX: input `input` of shape [N, 784] (float32), output `logits` [N, 10].

The graph is one Gemm (transB=1, weights in their (out, in) layout) per layer with a Relu between layers, opset 13,
built with `onnx.helper` so it needs neither torch nor an exporter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from advgap.files import atomic_write
from advgap.verify.network import ReluNet

OPSET = 13


def to_onnx(net: ReluNet, name: str = "advgap-mlp") -> onnx.ModelProto:
    """The ONNX model computing `net` in float32 with a free batch dimension."""
    nodes, inits = [], []
    current = "input"
    last = len(net.weights) - 1
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"W{k}"))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{k}"))
        out = "logits" if k == last else f"pre{k}"
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"b{k}"], [out], name=f"gemm{k}", transB=1))
        if k < last:
            nodes.append(helper.make_node("Relu", [out], [f"hidden{k}"], name=f"relu{k}"))
            current = f"hidden{k}"
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", net.n_inputs])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", net.n_outputs])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="advgap")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_onnx(path: str | Path, net: ReluNet) -> None:
    """Write `net` as an ONNX file, atomically."""
    path = Path(path)
    with atomic_write(path) as fh:
        fh.write(to_onnx(net, path.stem).SerializeToString())
