"""ONNX → ReluNet: read a feed-forward ReLU network (dense or convolutional) and check it against onnxruntime.

The graph is interpreted symbolically. Every tensor that depends on the network input is kept as an affine
function of the current *base* (the network input, or the output of the latest ReLU): an array `H` of shape
`(n_base + 1, *tensor_shape)` whose slice `H[j]` is the coefficient of base variable j and `H[-1]` the constant.
Linear operators act on `H` directly: Gemm, MatMul, Add/Sub/Mul/Div by constants, Neg, Conv (1-D and 2-D),
BatchNormalization (inference), AveragePool, GlobalAveragePool, Pad (constant mode), Dropout (inference),
Transpose, Concat, Gather, and the shape operators (Flatten, Reshape, Squeeze, Unsqueeze, Identity, Shape).
Input normalisation and consecutive linear layers thus fold into one dense layer (a convolution becomes its dense
matrix); a Relu closes the layer. Non-linear operators (MaxPool, Sigmoid, Softmax, ...) are refused. The input's
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
_CHUNK_BYTES = 256 * 2**20  # working memory of one convolution chunk
_MAX_DENSE_BYTES = 4 * 2**30  # largest affine form `H` built (a convolution's output, a Relu's new base)
_NOT_LINEAR = {"MaxPool": "max pooling is not linear", "GlobalMaxPool": "max pooling is not linear"}


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
    try:
        _check_dense(n + 1, n)
    except _NodeError as exc:
        raise ModelFormatError(f"{source}: input {inp.name!r}: {exc}") from exc
    values[inp.name] = _Lin(_identity(n, shape), 0)
    layers: _Layers = []
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for index, node in enumerate(graph.node):
        label = f"node {node.name or index!r} ({node.op_type})"
        handler = _HANDLERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if handler is None:
            reason = f" ({_NOT_LINEAR[node.op_type]})" if node.op_type in _NOT_LINEAR else ""
            raise ModelFormatError(
                f"{source}: unsupported operator {node.op_type} in node {node.name or index!r}{reason}"
            )
        extra = [name for name in node.output[1:] if name and name in used]
        if extra:
            raise ModelFormatError(f"{source}: {label}: only its first output is supported, {extra[0]!r} is used")
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
        if not isinstance(out, _Lin):
            out = _constant(np.asarray(out), label, source)
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


def _check_dense(rows: int, size: int) -> None:
    need = 8 * rows * size
    if need > _MAX_DENSE_BYTES:
        raise _NodeError(
            f"its dense affine form needs {need / 2**30:.1f} GiB (limit {_MAX_DENSE_BYTES / 2**30:.0f} GiB): "
            "too large for the dense verifier"
        )


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


def _op_neg(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    return _Lin(-x.H, x.depth) if isinstance(x, _Lin) else -x


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
    n = int(np.prod(x.shape))
    _check_dense(n + 1, n)
    layers.append(_close(x))
    return _Lin(_identity(n, x.shape), x.depth + 1)


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


def _int_array(v: _Value | None, what: str) -> np.ndarray:
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iu":
        raise _NodeError(f"{what} must be a constant integer tensor")
    return v.astype(np.int64)


def _ints(v: _Value | None, what: str) -> list[int]:
    return [int(d) for d in _int_array(v, what).reshape(-1)]


def _op_reshape(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x = args[0]
    shape = tuple(x.shape)
    dims = _ints(args[1], "target shape")
    if not attrs.get("allowzero", 0):
        dims = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(dims)]
    return _reshape(x, tuple(dims))


def _axes(args: _Args, attrs: _Attrs, opset: int) -> list[int] | None:
    if opset >= 13:
        return _ints(args[1], "axes") if len(args) > 1 and args[1] is not None else None
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


def _rowwise(x: _Value, fn: Callable[[np.ndarray], np.ndarray]) -> _Value:
    """Apply a linear map without offset, `fn` (its leading axis is a batch of rows), to a tensor."""
    if isinstance(x, _Lin):
        return _Lin(fn(x.H), x.depth)
    return fn(_float(x)[None])[0]


def _shift(v: _Value, c: np.ndarray) -> _Value:
    """v + c for a freshly computed v (an affine tensor's constant row is updated in place)."""
    if isinstance(v, _Lin):
        v.H[-1] += c
        return v
    return v + c


def _required(attrs: _Attrs, key: str) -> Any:
    if key not in attrs:
        raise _NodeError(f"missing attribute {key!r}")
    return attrs[key]


def _text(attrs: _Attrs, key: str, default: str) -> str:
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


_Window = tuple[list[int], list[int], list[tuple[int, int]]]


def _window(attrs: _Attrs, spatial: tuple[int, ...], kernel: tuple[int, ...]) -> _Window:
    """Strides, dilations and (begin, end) pads per spatial axis of a Conv or pooling node, auto_pad resolved."""
    d = len(spatial)
    strides = [int(s) for s in attrs.get("strides", [1] * d)]
    dilations = [int(s) for s in attrs.get("dilations", [1] * d)]
    if len(strides) != d or len(dilations) != d or min(strides + dilations) < 1:
        raise _NodeError(f"strides {strides} and dilations {dilations} must be {d} positive integers")
    auto_pad = _text(attrs, "auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0] * 2 * d)]
        if len(pads) != 2 * d or min(pads) < 0:
            raise _NodeError(f"pads {pads} must be {2 * d} non-negative integers")
        return strides, dilations, list(zip(pads[:d], pads[d:], strict=True))
    if auto_pad == "VALID":
        return strides, dilations, [(0, 0)] * d
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise _NodeError(f"unknown auto_pad {auto_pad!r}")
    pairs = []
    for size, k, s, dil in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * dil + 1 - size)
        small, large = total // 2, total - total // 2
        pairs.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return strides, dilations, pairs


def _out_size(size: int, k: int, stride: int, dilation: int, pad: tuple[int, int], ceil: bool = False) -> int:
    span = size + sum(pad) - (k - 1) * dilation - 1
    if span < 0:
        raise _NodeError(f"kernel extent {(k - 1) * dilation + 1} exceeds the padded input size {size + sum(pad)}")
    return (-(-span // stride) if ceil else span // stride) + 1


def _conv_rows(H: np.ndarray, kernel: np.ndarray, window: _Window, groups: int) -> np.ndarray:
    """Zero-padded convolution, without bias, of every row of H, shape (rows, N, C, *spatial) with 1 or 2 spatial
    axes, by `kernel` (M, C / groups, *kernel_spatial); torch in float64, in chunks of bounded memory."""
    import torch  # only here: importing torch takes a second, and dense networks do not need it
    import torch.nn.functional as F
    strides, dilations, pads = window
    d = H.ndim - 3
    if d not in (1, 2):
        raise _NodeError(f"only 1-D and 2-D convolutions and pools are supported, got {d}-D")
    if d == 1:
        H, kernel = H[..., None, :], kernel[..., None, :]
        strides, dilations, pads = [1, *strides], [1, *dilations], [(0, 0), *pads]
    rows, batch, channels = H.shape[:3]
    out_shape = [_out_size(*args) for args in zip(H.shape[3:], kernel.shape[2:], strides, dilations, pads, strict=True)]
    padded = [size + sum(pad) for size, pad in zip(H.shape[3:], pads, strict=True)]
    _check_dense(rows * batch, kernel.shape[0] * int(np.prod(out_shape)))
    x = torch.from_numpy(np.ascontiguousarray(H, dtype=np.float64)).reshape(rows * batch, channels, *H.shape[3:])
    w = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float64))
    out = np.empty((rows * batch, kernel.shape[0], *out_shape))
    per_item = 8 * (channels * int(np.prod(padded)) + out[0].size)
    chunk = max(1, _CHUNK_BYTES // per_item)
    flat_pads = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
    for start in range(0, rows * batch, chunk):
        part = F.pad(x[start : start + chunk], flat_pads)
        y = F.conv2d(part, w, stride=strides, dilation=dilations, groups=groups)
        out[start : start + chunk] = y.numpy()
    out = out.reshape(rows, batch, *out.shape[1:])
    return out[..., 0, :] if d == 1 else out


def _op_conv(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x, kernel = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    if isinstance(kernel, _Lin) or isinstance(bias, _Lin):
        raise _NodeError("weights and bias must be constants")
    kernel = _float(kernel)
    if len(x.shape) != kernel.ndim or len(x.shape) < 3:
        raise _NodeError(f"input of shape {tuple(x.shape)} does not match a kernel of shape {kernel.shape}")
    if list(attrs.get("kernel_shape", kernel.shape[2:])) != list(kernel.shape[2:]):
        raise _NodeError(f"kernel_shape {list(attrs['kernel_shape'])} differs from the weights' {kernel.shape[2:]}")
    groups = int(attrs.get("group", 1))
    if groups < 1 or kernel.shape[0] % groups or x.shape[1] != kernel.shape[1] * groups:
        raise _NodeError(f"{x.shape[1]} input channels and group {groups} do not fit a kernel of shape {kernel.shape}")
    window = _window(attrs, tuple(x.shape[2:]), kernel.shape[2:])
    y = _rowwise(x, lambda H: _conv_rows(H, kernel, window, groups))
    if bias is None:
        return y
    return _shift(y, _float(bias).reshape((-1,) + (1,) * (kernel.ndim - 2)))


def _op_average_pool(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    if len(x.shape) < 3:
        raise _NodeError(f"input must have spatial axes, got shape {tuple(x.shape)}")
    spatial, size = tuple(x.shape[2:]), tuple(int(k) for k in _required(attrs, "kernel_shape"))
    if len(size) != len(spatial):
        raise _NodeError(f"kernel_shape {list(size)} does not match the input's {len(spatial)} spatial axes")
    window = _window(attrs, spatial, size)
    axes = list(zip(spatial, size, *window, strict=True))
    if attrs.get("ceil_mode", 0) and any(_out_size(*a, ceil=True) != _out_size(*a) for a in axes):
        raise _NodeError("ceil_mode with partial windows is not supported")
    ones = np.ones((1, 1, *size))
    if attrs.get("count_include_pad", 0):
        count = np.array(float(np.prod(size)))
    else:
        count = _conv_rows(np.ones((1, 1, 1, *spatial)), ones, window, 1)[0, 0, 0]
    kernel = np.ones((x.shape[1], 1, *size))
    return _rowwise(x, lambda H: _conv_rows(H, kernel, window, x.shape[1]) / count)


def _op_global_average_pool(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    axes = tuple(range(3, len(x.shape) + 1))
    return _rowwise(x, lambda H: H.mean(axis=axes, keepdims=True))


def _op_batch_norm(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x, params = args[0], args[1:5]
    if attrs.get("training_mode", 0):
        raise _NodeError("training_mode BatchNormalization is not supported")
    if len(params) != 4 or not all(isinstance(p, np.ndarray) for p in params):
        raise _NodeError("scale, B, mean and var must be constants")
    scale, shift, mean, var = (_float(p) for p in params)
    if len(x.shape) < 2 or any(p.shape != (x.shape[1],) for p in (scale, shift, mean, var)):
        raise _NodeError(f"parameters must have one value per channel of the input of shape {tuple(x.shape)}")
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    per_channel = (-1,) + (1,) * (len(x.shape) - 2)
    y = _rowwise(x, lambda H: H * factor.reshape(per_channel))
    return _shift(y, (shift - mean * factor).reshape(per_channel))


def _op_dropout(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    training = args[2] if len(args) > 2 else None
    if isinstance(training, _Lin) or (training is not None and training.any()):
        raise _NodeError("training_mode Dropout is random, only inference is supported")
    return args[0]


def _op_transpose(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    rank = len(x.shape)
    perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
    if sorted(perm) != list(range(rank)):
        raise _NodeError(f"perm {perm} is not a permutation of {rank} axes")
    if isinstance(x, _Lin):
        return _Lin(x.H.transpose(0, *(p + 1 for p in perm)), x.depth)
    return x.transpose(perm)


def _op_pad(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x = args[0]
    mode = _text(attrs, "mode", "constant")
    if mode != "constant":
        raise _NodeError(f"pad mode {mode!r} is not supported (only 'constant')")
    rank = len(x.shape)
    if opset >= 11:
        pads = _ints(args[1], "pads")
        value = args[2] if len(args) > 2 else None
        if isinstance(value, _Lin):
            raise _NodeError("constant_value must be a constant")
        fill = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
        axes = _ints(args[3], "axes") if len(args) > 3 and args[3] is not None else list(range(rank))
    else:
        pads, fill, axes = [int(p) for p in _required(attrs, "pads")], float(attrs.get("value", 0.0)), list(range(rank))
    if len(pads) != 2 * len(axes) or any(not -rank <= a < rank for a in axes):
        raise _NodeError(f"pads {pads} do not fit axes {axes} of a rank-{rank} tensor")
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a % rank] = (pads[i], pads[i + len(axes)])
    crop = tuple(slice(max(-b, 0), size - max(-e, 0)) for size, (b, e) in zip(x.shape, widths, strict=True))
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    if isinstance(x, np.ndarray):
        return np.pad(x[crop], grow, constant_values=fill)
    H = x.H[(slice(None), *crop)]
    coefficients = np.pad(H[:-1], [(0, 0), *grow])
    return _Lin(np.concatenate([coefficients, np.pad(H[-1], grow, constant_values=fill)[None]]), x.depth)


def _op_concat(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    axis = int(_required(attrs, "axis"))
    if all(isinstance(a, np.ndarray) for a in args):
        return np.concatenate(args, axis=axis)
    lins = [a for a in args if isinstance(a, _Lin)]
    if len({a.depth for a in lins}) > 1:
        raise _NodeError("concatenates tensors computed before and after a Relu (not a feed-forward chain)")
    rank, rows = len(lins[0].shape), lins[0].H.shape[0]
    if not -rank <= axis < rank:
        raise _NodeError(f"axis {axis} out of range for rank {rank}")
    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            lifted = np.zeros((rows, *a.shape))
            lifted[-1] = _float(a)
            a = _Lin(lifted, lins[0].depth)
        parts.append(a.H)
    return _Lin(np.concatenate(parts, axis=axis % rank + 1), lins[0].depth)


def _op_shape(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    (x,) = args
    shape = np.array(x.shape, dtype=np.int64)
    return shape[attrs.get("start", 0) : attrs.get("end", len(shape))]


def _op_gather(args: _Args, attrs: _Attrs, opset: int, layers: _Layers) -> _Value:
    x = args[0]
    indices = _int_array(args[1], "indices")
    axis = int(attrs.get("axis", 0))
    rank = len(x.shape)
    if not -rank <= axis < rank or np.any((indices < -x.shape[axis]) | (indices >= x.shape[axis])):
        raise _NodeError(f"indices or axis {axis} out of range for shape {tuple(x.shape)}")
    if isinstance(x, _Lin):
        return _Lin(np.take(x.H, indices, axis=axis % rank + 1), x.depth)
    return np.take(x, indices, axis=axis)


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
    "Neg": _op_neg,
    "Conv": _op_conv,
    "AveragePool": _op_average_pool,
    "GlobalAveragePool": _op_global_average_pool,
    "BatchNormalization": _op_batch_norm,
    "Dropout": _op_dropout,
    "Transpose": _op_transpose,
    "Pad": _op_pad,
    "Concat": _op_concat,
    "Shape": _op_shape,
    "Gather": _op_gather,
}
