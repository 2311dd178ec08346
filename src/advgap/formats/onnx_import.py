"""ONNX → ReluNet: read a fully connected ReLU network and check it against onnxruntime.

The graph is interpreted symbolically. Every tensor that depends on the network input is kept as an affine
function of the current *base* (the network input, or the output of the latest ReLU): an array `H` of shape
`(n_base + 1, *tensor_shape)` whose slice `H[j]` is the coefficient of base variable j and `H[-1]` the constant.
Linear operators (Gemm, MatMul, Add/Sub/Mul/Div by constants, shape-only operators) act on `H` directly, so
input normalisation and consecutive affine layers fold into one layer; a Relu closes the layer. The input's
symbolic dimensions count as 1 and the ReluNet's inputs are the input tensor flattened in C order (VNN-LIB's X_i).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from advgap.errors import ModelFormatError
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
_INPUT_DTYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64}


@dataclass(frozen=True)
class _Lin:
    """A tensor affine in the base of layer `depth`: `H[:-1]` coefficients, `H[-1]` constant."""

    H: np.ndarray
    depth: int

    @property
    def shape(self) -> tuple[int, ...]:
        return self.H.shape[1:]


_Value = _Lin | np.ndarray
_Args = list[_Value | None]
_Attrs = dict[str, Any]
_Layers = list[tuple[np.ndarray, np.ndarray]]


class _NodeError(Exception):
    """Raised by an operator handler; turned into a ModelFormatError naming the node."""


class OnnxReplayer:
    """A reusable onnxruntime session of the original model: flat float64 inputs in, flat float64 logits out."""

    def __init__(self, model: onnx.ModelProto, source: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except _ORT_ERRORS as exc:
            raise ModelFormatError(f"{source}: onnxruntime cannot load the model ({exc})") from exc
        (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        self._input_name = inp.name
        self._input_shape = _input_shape(inp)
        self._dtype = _INPUT_DTYPES[inp.type.tensor_type.elem_type]
        self.n_inputs = int(np.prod(self._input_shape))

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


def load_onnx(path: str | Path) -> OnnxModel:
    """Import `path` as a ReluNet and check it against onnxruntime on random inputs in [0, 1].

    Raises ModelFormatError naming the file (and the node, for unsupported operators) on any defect, and when
    the ReluNet and onnxruntime differ by more than `CHECK_RTOL` relative to the logit scale.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: no such ONNX file")
    try:
        model = onnx.load_model(str(path))
        onnx.checker.check_model(model)
    except (DecodeError, OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelFormatError(f"{path}: not a valid ONNX model ({exc})") from exc
    net = onnx_to_relunet(model, str(path))
    replayer = OnnxReplayer(model, str(path))
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
    return OnnxModel(net, replayer, diff)


def onnx_to_relunet(model: onnx.ModelProto, source: str = "<onnx>") -> ReluNet:
    """Convert a loaded ONNX model to a ReluNet (no onnxruntime check; `load_onnx` does that)."""
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    values: dict[str, _Value] = {}
    for init in graph.initializer:
        values[init.name] = _constant(numpy_helper.to_array(init), f"initializer {init.name!r}", source)
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1:
        raise ModelFormatError(f"{source}: expected one network input, found {len(inputs)}")
    if len(graph.output) != 1:
        raise ModelFormatError(f"{source}: expected one network output, found {len(graph.output)}")
    inp = inputs[0]
    if inp.type.tensor_type.elem_type not in _INPUT_DTYPES:
        raise ModelFormatError(f"{source}: input {inp.name!r} must be float or double")
    shape = _input_shape(inp)
    n = int(np.prod(shape))
    values[inp.name] = _Lin(_identity(n, shape), 0)
    layers: _Layers = []
    for index, node in enumerate(graph.node):
        label = f"node {node.name or index!r} ({node.op_type})"
        handler = _HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if handler is None:
            raise ModelFormatError(f"{source}: unsupported operator {node.op_type} in node {node.name or index!r}")
        args = []
        for name in node.input:
            if name and name not in values:
                raise ModelFormatError(f"{source}: {label} uses tensor {name!r} before it is defined")
            args.append(values[name] if name else None)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        try:
            out = handler(args, attrs, opset, layers)
        except (_NodeError, ValueError) as exc:
            raise ModelFormatError(f"{source}: {label}: {exc}") from exc
        if isinstance(out, np.ndarray):
            out = _constant(out, label, source)
        values[node.output[0]] = out
    result = values.get(graph.output[0].name)
    if not isinstance(result, _Lin):
        raise ModelFormatError(f"{source}: output {graph.output[0].name!r} does not depend on the input")
    layers.append(_close(result))
    try:
        return ReluNet.from_layers(layers)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{source}: {exc}") from exc


def _input_shape(inp: onnx.ValueInfoProto) -> tuple[int, ...]:
    return tuple(d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim)


def _describe(net: ReluNet) -> str:
    return "-".join(str(s) for s in (net.n_inputs, *net.hidden_sizes, net.n_outputs))


def _constant(array: np.ndarray, what: str, source: str) -> np.ndarray:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ModelFormatError(f"{source}: {what} contains NaN or inf")
    return array


def _identity(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.vstack([np.eye(n), np.zeros((1, n))]).reshape((n + 1, *shape))


def _close(lin: _Lin) -> tuple[np.ndarray, np.ndarray]:
    """The (W, b) of an affine tensor, flattened: W of shape (out, n_base)."""
    flat = lin.H.reshape(lin.H.shape[0], -1)
    return flat[:-1].T, flat[-1]


def _float(c: np.ndarray) -> np.ndarray:
    if c.dtype.kind not in "fiu":
        raise _NodeError(f"constant of type {c.dtype} cannot enter arithmetic")
    return c.astype(np.float64)


def _expand(lin: _Lin, shape: tuple[int, ...]) -> np.ndarray:
    """`lin.H` broadcast to tensor shape `shape` (numpy broadcasting, aligned on the right)."""
    H = lin.H.reshape((lin.H.shape[0],) + (1,) * (len(shape) - len(lin.shape)) + lin.shape)
    return np.broadcast_to(H, (lin.H.shape[0], *shape)).copy()


def _add(a: _Value, b: _Value, sign: float) -> _Value:
    """a + sign * b for constants and affine tensors."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + sign * b
    if isinstance(a, _Lin) and isinstance(b, _Lin):
        if a.depth != b.depth:
            raise _NodeError("adds tensors computed before and after a Relu (not a feed-forward chain)")
        shape = np.broadcast_shapes(a.shape, b.shape)
        return _Lin(_expand(a, shape) + sign * _expand(b, shape), a.depth)
    if isinstance(a, np.ndarray):
        lin, const, lin_sign = b, _float(a), sign
    else:
        lin, const, lin_sign = a, sign * _float(b), 1.0
    H = lin_sign * _expand(lin, np.broadcast_shapes(lin.shape, const.shape))
    H[-1] += const
    return _Lin(H, lin.depth)


def _op_add(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    return _add(args[0], args[1], 1.0)


def _op_sub(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    return _add(args[0], args[1], -1.0)


def _op_mul(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    a, b = args
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a * b
    if isinstance(a, _Lin) and isinstance(b, _Lin):
        raise _NodeError("multiplies two input-dependent tensors (not linear)")
    lin, const = (a, _float(b)) if isinstance(a, _Lin) else (b, _float(a))
    return _Lin(_expand(lin, np.broadcast_shapes(lin.shape, const.shape)) * const, lin.depth)


def _op_div(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    a, b = args
    if isinstance(b, _Lin):
        raise _NodeError("divides by an input-dependent tensor (not linear)")
    if np.any(b == 0):
        raise _NodeError("divides by zero")
    if isinstance(a, np.ndarray):
        return a / b
    return _Lin(_expand(a, np.broadcast_shapes(a.shape, b.shape)) / _float(b), a.depth)


def _matmul(a: _Value, b: _Value) -> _Value:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.matmul(a, b)
    if isinstance(a, _Lin) and isinstance(b, _Lin):
        raise _NodeError("multiplies two input-dependent tensors (not linear)")
    if isinstance(a, _Lin):
        b = _float(b)
        if len(a.shape) < 2:
            if b.ndim > 2:
                raise _NodeError("input-dependent vector times a batch of matrices is not supported")
            return _Lin(np.matmul(a.H, b), a.depth)
        rank = max(len(a.shape), b.ndim)
        H = a.H.reshape((a.H.shape[0],) + (1,) * (rank - len(a.shape)) + a.shape)
        return _Lin(np.matmul(H, b), a.depth)
    a = _float(a)
    if len(b.shape) < 2:
        if a.ndim != 2:
            raise _NodeError("matrix times input-dependent vector needs a 2-D matrix")
        return _Lin(np.matmul(b.H, a.T), b.depth)
    rank = max(len(b.shape), a.ndim)
    H = b.H.reshape((b.H.shape[0],) + (1,) * (rank - len(b.shape)) + b.shape)
    return _Lin(np.matmul(a, H), b.depth)


def _op_matmul(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    return _matmul(args[0], args[1])


def _transpose2(v: _Value) -> _Value:
    return _Lin(v.H.swapaxes(1, 2), v.depth) if isinstance(v, _Lin) else v.T


def _op_gemm(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else None
    for v in (a, b):
        if len(v.shape) != 2:
            raise _NodeError(f"Gemm operand must be 2-D, got shape {tuple(v.shape)}")
    if attrs.get("transA", 0):
        a = _transpose2(a)
    if attrs.get("transB", 0):
        b = _transpose2(b)
    y = _matmul(a, b)
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    y = _Lin(y.H * alpha, y.depth) if isinstance(y, _Lin) else y * alpha
    if c is None:
        return y
    if isinstance(c, _Lin):
        raise _NodeError("Gemm bias C depends on the input")
    return _add(y, beta * _float(c), 1.0)


def _op_relu(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    if isinstance(x, np.ndarray):
        return np.maximum(x, 0)
    if x.depth != len(layers):
        raise _NodeError("Relu of a tensor computed before an earlier Relu (not a feed-forward chain)")
    layers.append(_close(x))
    return _Lin(_identity(int(np.prod(x.shape)), x.shape), x.depth + 1)


def _reshape(v: _Value, shape: tuple[int, ...]) -> _Value:
    if isinstance(v, np.ndarray):
        return v.reshape(shape)
    return _Lin(v.H.reshape((v.H.shape[0], *shape)), v.depth)


def _op_identity(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    return args[0]


def _op_flatten(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    shape = tuple(x.shape)
    axis = int(attrs.get("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise _NodeError(f"axis {axis} out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return _reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))


def _op_reshape(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x, target = args[0], args[1]
    if not isinstance(target, np.ndarray) or target.dtype.kind not in "iu":
        raise _NodeError("target shape must be a constant integer tensor")
    shape = tuple(x.shape)
    dims = [int(d) for d in target.reshape(-1)]
    if not attrs.get("allowzero", 0):
        dims = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(dims)]
    return _reshape(x, tuple(dims))


def _axes(args: _Args, attrs: _Attrs, opset: int) -> list[int] | None:
    if opset >= 13:
        axes = args[1] if len(args) > 1 else None
        if axes is not None and not isinstance(axes, np.ndarray):
            raise _NodeError("axes must be a constant")
        return None if axes is None else [int(a) for a in axes.reshape(-1)]
    return list(attrs["axes"]) if "axes" in attrs else None


def _op_squeeze(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x = args[0]
    shape = tuple(x.shape)
    axes = _axes(args, attrs, opset)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else [a % max(len(shape), 1) for a in axes]
    if any(not 0 <= a < len(shape) or shape[a] != 1 for a in axes):
        raise _NodeError(f"cannot squeeze axes {axes} of shape {shape}")
    return _reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def _op_unsqueeze(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x = args[0]
    axes = _axes(args, attrs, opset)
    if axes is None:
        raise _NodeError("Unsqueeze needs axes")
    rank = len(x.shape) + len(axes)
    axes = sorted(a % rank for a in axes)
    dims = list(x.shape)
    for a in axes:
        dims.insert(a, 1)
    return _reshape(x, tuple(dims))


def _op_constant(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key], dtype=np.int64)
    raise _NodeError(f"unsupported Constant attributes {sorted(attrs)}")


_HANDLERS: dict[str, Callable[[_Args, _Attrs, int, _Layers], _Value]] = {
    "Add": _op_add,
    "Sub": _op_sub,
    "Mul": _op_mul,
    "Div": _op_div,
    "MatMul": _op_matmul,
    "Gemm": _op_gemm,
    "Relu": _op_relu,
    "Identity": _op_identity,
    "Flatten": _op_flatten,
    "Reshape": _op_reshape,
    "Squeeze": _op_squeeze,
    "Unsqueeze": _op_unsqueeze,
    "Constant": _op_constant,
}
