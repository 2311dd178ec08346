"""ONNX → ReluNet: read a feed-forward ReLU network (dense or convolutional) and check it against onnxruntime.

The graph is interpreted symbolically (`advgap.formats.onnx_ops`): every tensor that depends on the network input
is affine in the current base — the input, or the outputs of the latest ReLU layer — through a lazy chain of linear
operators that becomes one dense layer when a Relu closes it (`advgap.formats.affine`, from the layer's smaller
side: a wide feature map never costs a square matrix). Input normalisation and consecutive linear operators thus
fold into one layer, a convolution becoming its dense matrix. MaxPool and GlobalMaxPool become exact ReLU layers
(`advgap.formats.maxpool`); other non-linear operators (Sigmoid, Softmax, ...) are refused with the node named.
A tensor the graph still needs after a layer closes (a residual connection's skip tensor) crosses that layer as
pass-through neurons (`Layers.live`).
The input's symbolic dimensions count as 1 and the ReluNet's inputs are the input tensor flattened in C order
(VNN-LIB's X_i).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from advgap.errors import ModelFormatError
from advgap.formats.affine import Affine, Layers, NodeError, base, reshape
from advgap.formats.maxpool import POOL_HANDLERS
from advgap.formats.onnx_attrs import Value
from advgap.formats.onnx_ops import HANDLERS
from advgap.formats.onnx_proto import (
    META_KEY,
    ModelProto,
    TensorProto,
    ValueInfoProto,
    attribute_value,
    read_model,
    to_array,
)
from advgap.verify.network import ReluNet

log = logging.getLogger(__name__)

CHECK_SAMPLES = 8
CHECK_RTOL = 1e-4  # allowed |ReluNet - onnxruntime| relative to the logit scale max(1, max |y|)
_ORT_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidGraph,
    ort_state.InvalidArgument,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
    ort_state.RuntimeException,
)
_INPUT_DTYPES = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
_HANDLERS = {**HANDLERS, **POOL_HANDLERS}


class OnnxReplayer:
    """A reusable onnxruntime session of the original model: flat float64 inputs in, flat float64 logits out."""

    def __init__(self, model: ModelProto, source: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except _ORT_ERRORS as exc:
            detail = " ".join(str(exc).split())
            raise ModelFormatError(f"{source}: onnxruntime cannot load the model ({detail})") from exc
        (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        self._input_name = inp.name
        self._input_shape = _input_shape(inp)
        self._dtype = _INPUT_DTYPES[inp.type.tensor_type.elem_type]
        self.n_inputs = int(np.prod(self._input_shape))
        # one sample's shape: the leading dimension is the batch when there is more than one
        self.input_shape = self._input_shape[1:] if len(self._input_shape) > 1 else self._input_shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits of one input (n_inputs,) or a batch (batch, n_inputs), computed by onnxruntime."""
        x = np.asarray(x, dtype=np.float64)
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[1] != self.n_inputs:
            raise ModelFormatError(f"input has {rows.shape[1]} features, the ONNX model expects {self.n_inputs}")
        out = []
        for row in rows:
            feed = {self._input_name: row.astype(self._dtype).reshape(self._input_shape)}
            (y,) = self._session.run(None, feed)
            out.append(np.asarray(y, dtype=np.float64).reshape(-1))
        result = np.stack(out)
        return result[0] if x.ndim == 1 else result


@dataclass(frozen=True)
class OnnxModel:
    """An imported ONNX network: the ReluNet, the onnxruntime replayer and their largest observed disagreement."""

    net: ReluNet
    replayer: OnnxReplayer
    max_abs_diff: float
    meta: dict[str, Any] = field(default_factory=dict)


def load_onnx(path: str | Path) -> OnnxModel:
    """Import `path` as a ReluNet and check it against onnxruntime on random inputs in [0, 1].

    Raises ModelFormatError naming the file (and the node, for unsupported operators) on any defect, and when
    the ReluNet and onnxruntime differ by more than `CHECK_RTOL` relative to the logit scale.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such ONNX file")
    try:
        model = read_model(path)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"{path}: not a valid ONNX model ({exc})") from exc
    replayer = OnnxReplayer(model, str(path))  # onnxruntime validates the graph before advgap interprets it
    net = onnx_to_relunet(model, str(path))
    rng = np.random.default_rng(0)
    xs = rng.uniform(0.0, 1.0, size=(CHECK_SAMPLES, net.n_inputs))
    expected = replayer(xs)
    diff = float(np.max(np.abs(net.forward(xs) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    log.info("%s: %s, max |ReluNet - onnxruntime| = %.3g", path, _describe(net), diff)
    if not diff <= CHECK_RTOL * scale:
        raise ModelFormatError(
            f"{path}: imported network differs from onnxruntime by {diff:.3g} (allowed {CHECK_RTOL * scale:.3g})"
        )
    return OnnxModel(net, replayer, diff, read_metadata(model, str(path)))


def read_metadata(model: ModelProto, source: str) -> dict[str, Any]:
    """The advgap metadata (training recipe, accuracies) stored under `META_KEY`, or {} if there is none."""
    for prop in model.metadata_props:
        if prop.key == META_KEY:
            try:
                meta = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise ModelFormatError(f"{source}: metadata {META_KEY!r} is not JSON ({exc})") from exc
            if not isinstance(meta, dict):
                raise ModelFormatError(f"{source}: metadata {META_KEY!r} is not a JSON object")
            return meta
    return {}


def onnx_to_relunet(model: ModelProto, source: str = "<onnx>") -> ReluNet:
    """Convert a loaded ONNX model to a ReluNet (no onnxruntime check; `load_onnx` does that)."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    values: dict[str, Value] = {}
    for init in graph.initializer:
        try:
            array = to_array(init)
        except ValueError as exc:
            raise ModelFormatError(f"{source}: initializer {init.name!r}: {exc}") from exc
        values[init.name] = _constant(array, f"initializer {init.name!r}", source)
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1:
        raise ModelFormatError(f"{source}: expected one network input, found {len(inputs)}")
    if len(graph.output) != 1:
        raise ModelFormatError(f"{source}: expected one network output, found {len(graph.output)}")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type not in _INPUT_DTYPES:
        raise ModelFormatError(f"{source}: input {inp.name!r} must be float or double")
    shape = _input_shape(inp)
    values[inp.name] = reshape(base(int(np.prod(shape)), 0), shape)
    layers = Layers()
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    last_use = {name: index for index, node in enumerate(graph.node) for name in node.input}
    last_use.update({o.name: len(graph.node) for o in graph.output})
    for index, node in enumerate(graph.node):
        label = f"node {node.name or index!r} ({node.op_type})"
        handler = _HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if handler is None:
            raise ModelFormatError(f"{source}: unsupported operator {node.op_type} in node {node.name or index!r}")
        extra = [name for name in node.output[1:] if name and name in used]
        if extra:
            raise ModelFormatError(f"{source}: {label}: only its first output is supported, {extra[0]!r} is used")
        args = []
        for name in node.input:
            if name and name not in values:
                raise ModelFormatError(f"{source}: {label} uses tensor {name!r} before it is defined")
            args.append(values[name] if name else None)
        layers.live = {name: v for name, v in values.items()
                       if isinstance(v, Affine) and v.depth == layers.depth and last_use.get(name, -1) > index}
        try:
            attrs = {a.name: attribute_value(a) for a in node.attribute}
            out = handler(args, attrs, opset, layers)
        except (NodeError, ValueError) as exc:
            raise ModelFormatError(f"{source}: {label}: {exc}") from exc
        values.update(layers.live)  # tensors carried across a layer the node closed, over the new base
        if not isinstance(out, Affine):
            out = _constant(np.asarray(out), label, source)
        values[node.output[0]] = out
    result = values.get(graph.output[0].name)
    if not isinstance(result, Affine):
        raise ModelFormatError(f"{source}: output {graph.output[0].name!r} does not depend on the input")
    try:
        last = layers.matrix(result)
    except NodeError as exc:
        raise ModelFormatError(f"{source}: output {graph.output[0].name!r}: {exc}") from exc
    try:
        return ReluNet.from_layers([*layers.pairs, last])
    except ModelFormatError as exc:
        raise ModelFormatError(f"{source}: {exc}") from exc


def _input_shape(inp: ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim)


def _describe(net: ReluNet) -> str:
    return "-".join(str(s) for s in (net.n_inputs, *net.hidden_sizes, net.n_outputs))


def _constant(array: np.ndarray, what: str, source: str) -> np.ndarray:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFormatError(f"{source}: {what} contains NaN or inf")
    return array


