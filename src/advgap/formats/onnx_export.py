"""Export a ReluNet as ONNX: input `input` of shape [N, 784] (float32), output `logits` [N, 10].

The graph is one Gemm (transB=1, weights in their (out, in) layout) per layer with a Relu between layers, opset 13,
built with `onnx.helper` so it needs neither torch nor an exporter. advgap's metadata (training recipe, accuracies)
travels as JSON in the model's `metadata_props` under `META_KEY`, read back by `advgap.formats.onnx_import`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from advgap.files import atomic_write
from advgap.formats.onnx_proto import META_KEY
from advgap.verify.network import ReluNet, dense

OPSET = 13


def to_onnx(net: ReluNet, name: str = "advgap-mlp") -> onnx.ModelProto:
    """The ONNX model computing `net` in float32 with a free batch dimension."""
    nodes, inits = [], []
    current = "input"
    last = len(net.weights) - 1
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        inits.append(numpy_helper.from_array(dense(w).astype(np.float32), f"W{k}"))
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


def set_metadata(model: onnx.ModelProto, meta: dict[str, Any]) -> None:
    """Store `meta` as JSON in the model's metadata under `META_KEY` (replacing an earlier entry)."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != META_KEY]
    del model.metadata_props[:]
    for key, value in [*kept, (META_KEY, json.dumps(meta, sort_keys=True))]:
        model.metadata_props.add(key=key, value=value)


def write_onnx(path: str | Path, model: onnx.ModelProto) -> None:
    """Write an ONNX model atomically."""
    with atomic_write(Path(path)) as fh:
        fh.write(model.SerializeToString())


def save_onnx(path: str | Path, net: ReluNet, meta: dict[str, Any] | None = None) -> None:
    """Write `net` as an ONNX file, atomically, with `meta` if given."""
    model = to_onnx(net, Path(path).stem)
    if meta is not None:
        set_metadata(model, meta)
    write_onnx(path, model)
