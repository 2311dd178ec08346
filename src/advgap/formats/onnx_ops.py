"""The ONNX operators the importer reads, on constants (numpy arrays) and affine tensors (`affine.Affine`).

Linear operators — Gemm, MatMul, Add/Sub/Mul/Div by constants, Neg, Conv (1-D and 2-D), BatchNormalization
(inference), AveragePool, GlobalAveragePool, Pad (constant mode), Dropout (inference), Transpose, Concat, Gather,
Slice, Cast (to a float type) and the shape operators (Flatten, Reshape, Squeeze, Unsqueeze, Identity, Shape,
ConstantOfShape) — extend an affine tensor's lazy map; Relu closes a dense layer. Each handler takes the node's
arguments, attributes, opset and the layers closed so far.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from advgap.formats.affine import Affine, Layers, NodeError, broadcast, combine, lift, reshape, unbroadcast
from advgap.formats.onnx_attrs import (
    Args,
    Attrs,
    Value,
    Window,
    as_float,
    int_array,
    ints,
    out_size,
    pool_kernel,
    required,
    text,
    window,
)
from advgap.formats.onnx_proto import np_dtype

Handler = Callable[[Args, Attrs, int, Layers], Value]


def _scale(x: Affine, factor: np.ndarray | float) -> Affine:
    """x times a constant broadcast against it."""
    shape = np.broadcast_shapes(x.shape, np.shape(factor))
    return lift(broadcast(x, shape), lambda v: v * factor, lambda g: g * factor)


def _linear(x: Value, forward: Callable[[np.ndarray], np.ndarray], adjoint: Callable[[np.ndarray], np.ndarray]
            ) -> Value:
    """A linear map on batches (leading axis: rows) applied to a constant or an affine tensor."""
    if isinstance(x, Affine):
        return lift(x, forward, adjoint)
    return forward(as_float(x)[None])[0]


def _add(a: Value, b: Value, sign: float) -> Value:
    """a + sign * b for constants and affine tensors."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + b if sign > 0 else a - b  # integer constants (shape arithmetic) stay integers
    shape = np.broadcast_shapes(a.shape, b.shape)
    if isinstance(a, Affine) and isinstance(b, Affine):
        return combine([broadcast(a, shape), broadcast(b, shape)], lambda u, v: u + sign * v,
                       lambda g: (g, sign * g))
    if isinstance(a, Affine):
        lin, const = broadcast(a, shape), sign * as_float(b)
    else:
        lin, const = broadcast(b, shape), as_float(a)
        if sign < 0:
            lin = _scale(lin, -1.0)
    return Affine(lin.op, lin.const + const, lin.depth)


def _op_add(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    return _add(args[0], args[1], 1.0)


def _op_sub(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    return _add(args[0], args[1], -1.0)


def _op_mul(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    a, b = args
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a * b
    if isinstance(a, Affine) and isinstance(b, Affine):
        raise NodeError("multiplies two input-dependent tensors (not linear)")
    return _scale(a, as_float(b)) if isinstance(a, Affine) else _scale(b, as_float(a))


def _op_neg(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    return _scale(x, -1.0) if isinstance(x, Affine) else -x


def _op_div(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    a, b = args
    if isinstance(b, Affine):
        raise NodeError("divides by an input-dependent tensor (not linear)")
    if np.any(b == 0):
        raise NodeError("divides by zero")
    return a / b if isinstance(a, np.ndarray) else _scale(a, 1.0 / as_float(b))


def _op_mod(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    """Mod of constants (torch's export computes axis indices with it); never of the network's values."""
    a, b = args
    if isinstance(a, Affine) or isinstance(b, Affine):
        raise NodeError("takes the modulus of an input-dependent tensor (not linear)")
    if np.any(b == 0):
        raise NodeError("takes a modulus by zero")
    return np.fmod(a, b) if int(attrs.get("fmod", 0)) else np.mod(a, b)


def _swap(x: Affine) -> Affine:
    """x with its last two axes exchanged."""
    return lift(x, lambda v: np.swapaxes(v, -1, -2), lambda g: np.swapaxes(g, -1, -2))


def _times(x: Affine, b: np.ndarray) -> Affine:
    """np.matmul(x, b) for an affine x and a constant b."""
    if len(x.shape) < 2:
        if b.ndim > 2:
            raise NodeError("input-dependent vector times a batch of matrices is not supported")
        back = (lambda g: g @ b.T) if b.ndim == 2 else (lambda g: g[:, None] * b)
        return lift(x, lambda v: v @ b, back)
    lead = (1,) * (max(len(x.shape), b.ndim) - len(x.shape))
    shape = x.shape

    def forward(v: np.ndarray) -> np.ndarray:
        return np.matmul(v.reshape(v.shape[0], *lead, *shape), b)

    def adjoint(g: np.ndarray) -> np.ndarray:
        g = g[..., None] * b if b.ndim == 1 else np.matmul(g, np.swapaxes(b, -1, -2))
        return unbroadcast(g, lead + shape).reshape(g.shape[0], *shape)

    return lift(x, forward, adjoint)


def _matmul(a: Value, b: Value) -> Value:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.matmul(a, b)
    if isinstance(a, Affine) and isinstance(b, Affine):
        raise NodeError("multiplies two input-dependent tensors (not linear)")
    if isinstance(a, Affine):
        return _times(a, as_float(b))
    a = as_float(a)
    if len(b.shape) < 2:
        if a.ndim != 2:
            raise NodeError("matrix times input-dependent vector needs a 2-D matrix")
        return _times(b, a.T)
    if a.ndim == 1:
        return _times(_swap(b), a)
    return _swap(_times(_swap(b), np.swapaxes(a, -1, -2)))


def _op_matmul(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    return _matmul(args[0], args[1])


def _op_gemm(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else None
    for v in (a, b):
        if len(v.shape) != 2:
            raise NodeError(f"Gemm operand must be 2-D, got shape {tuple(v.shape)}")
    if attrs.get("transA", 0):
        a = _swap(a) if isinstance(a, Affine) else a.T
    if attrs.get("transB", 0):
        b = _swap(b) if isinstance(b, Affine) else b.T
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    y = _matmul(a, b)
    if alpha != 1.0:
        y = _scale(y, alpha) if isinstance(y, Affine) else y * alpha
    if c is None:
        return y
    if isinstance(c, Affine):
        raise NodeError("Gemm bias C depends on the input")
    return _add(y, beta * as_float(c), 1.0)


def _op_relu(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    if isinstance(x, np.ndarray):
        return np.maximum(x, 0)
    return reshape(layers.relu(*layers.matrix(x)), x.shape)


def _reshape(v: Value, shape: tuple[int, ...]) -> Value:
    return reshape(v, shape) if isinstance(v, Affine) else v.reshape(shape)


def _op_identity(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    return args[0]


def _op_flatten(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    shape = tuple(x.shape)
    axis = int(attrs.get("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        raise NodeError(f"axis {axis} out of range for rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return _reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))


def _op_reshape(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    shape = tuple(x.shape)
    dims = ints(args[1], "target shape")
    if not attrs.get("allowzero", 0):
        dims = [shape[i] if d == 0 and i < len(shape) else d for i, d in enumerate(dims)]
    return _reshape(x, tuple(dims))


def _axes(args: Args, attrs: Attrs, opset: int) -> list[int] | None:
    if opset >= 13:
        return ints(args[1], "axes") if len(args) > 1 and args[1] is not None else None
    return list(attrs["axes"]) if "axes" in attrs else None


def _op_squeeze(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    shape = tuple(x.shape)
    axes = _axes(args, attrs, opset)
    axes = [i for i, d in enumerate(shape) if d == 1] if axes is None else [a % max(len(shape), 1) for a in axes]
    if any(not 0 <= a < len(shape) or shape[a] != 1 for a in axes):
        raise NodeError(f"cannot squeeze axes {axes} of shape {shape}")
    return _reshape(x, tuple(d for i, d in enumerate(shape) if i not in axes))


def _op_unsqueeze(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    axes = _axes(args, attrs, opset)
    if axes is None:
        raise NodeError("Unsqueeze needs axes")
    rank = len(x.shape) + len(axes)
    dims = list(x.shape)
    for a in sorted(a % rank for a in axes):
        dims.insert(a, 1)
    return _reshape(x, tuple(dims))


def _op_constant(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    if "value" in attrs:
        return attrs["value"]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    for key in ("value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key], dtype=np.int64)
    raise NodeError(f"unsupported Constant attributes {sorted(attrs)}")


def _conv_maps(
    shape: tuple[int, ...], kernel: np.ndarray, geometry: Window, groups: int
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Forward and adjoint, on batches, of the zero-padded convolution without bias of a tensor of `shape`
    (N, C, *spatial), 1 or 2 spatial axes, by `kernel` (M, C / groups, *kernel_spatial); torch, float64."""
    import torch  # only here: importing torch takes a second, and dense networks do not need it
    import torch.nn.functional as F

    strides, dilations, pads = geometry
    d = len(shape) - 2
    if d not in (1, 2):
        raise NodeError(f"only 1-D and 2-D convolutions and pools are supported, got {d}-D")
    for size, k, s, dil, pad in zip(shape[2:], kernel.shape[2:], strides, dilations, pads, strict=True):
        out_size(size, k, s, dil, pad)
    if d == 1:
        kernel = kernel[..., None, :]
        strides, dilations, pads = [1, *strides], [1, *dilations], [(0, 0), *pads]
    batch, channels, spatial = shape[0], shape[1], shape[2:]
    plane = (1, *spatial) if d == 1 else spatial
    padded = tuple(size + sum(pad) for size, pad in zip(plane, pads, strict=True))
    crop = (slice(None), slice(None), *(slice(b, p - e) for p, (b, e) in zip(padded, pads, strict=True)))
    flat_pads = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
    w = torch.from_numpy(np.ascontiguousarray(kernel, dtype=np.float64))

    def forward(v: np.ndarray) -> np.ndarray:
        rows = v.shape[0]
        t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).reshape(rows * batch, channels, *plane)
        y = F.conv2d(F.pad(t, flat_pads), w, stride=strides, dilation=dilations, groups=groups).numpy()
        return y.reshape(rows, batch, y.shape[1], *y.shape[4 - d :])

    def adjoint(g: np.ndarray) -> np.ndarray:
        rows = g.shape[0]
        t = torch.from_numpy(np.ascontiguousarray(g)).reshape(rows * batch, g.shape[2], *(1,) * (2 - d), *g.shape[3:])
        x = torch.nn.grad.conv2d_input((rows * batch, channels, *padded), w, t, stride=strides, dilation=dilations,
                                       groups=groups)
        return x[crop].numpy().reshape(rows, batch, channels, *spatial)

    return forward, adjoint


def _op_conv(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x, kernel = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    if isinstance(kernel, Affine) or isinstance(bias, Affine):
        raise NodeError("weights and bias must be constants")
    kernel = as_float(kernel)
    if len(x.shape) != kernel.ndim or len(x.shape) < 3:
        raise NodeError(f"input of shape {tuple(x.shape)} does not match a kernel of shape {kernel.shape}")
    if list(attrs.get("kernel_shape", kernel.shape[2:])) != list(kernel.shape[2:]):
        raise NodeError(f"kernel_shape {list(attrs['kernel_shape'])} differs from the weights' {kernel.shape[2:]}")
    groups = int(attrs.get("group", 1))
    if groups < 1 or kernel.shape[0] % groups or x.shape[1] != kernel.shape[1] * groups:
        raise NodeError(f"{x.shape[1]} input channels and group {groups} do not fit a kernel of shape {kernel.shape}")
    geometry = window(attrs, tuple(x.shape[2:]), kernel.shape[2:])
    y = _linear(x, *_conv_maps(tuple(x.shape), kernel, geometry, groups))
    if bias is None:
        return y
    return _add(y, as_float(bias).reshape((-1,) + (1,) * (kernel.ndim - 2)), 1.0)


def _op_average_pool(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    spatial, size, geometry = pool_kernel(attrs, x)
    axes = list(zip(spatial, size, *geometry, strict=True))
    if attrs.get("ceil_mode", 0) and any(out_size(*a, ceil=True) != out_size(*a) for a in axes):
        raise NodeError("ceil_mode with partial windows is not supported")
    if attrs.get("count_include_pad", 0):
        count = np.array(float(np.prod(size)))
    else:
        ones = _conv_maps((1, 1, *spatial), np.ones((1, 1, *size)), geometry, 1)[0]
        count = ones(np.ones((1, 1, 1, *spatial)))[0, 0, 0]
    forward, adjoint = _conv_maps(tuple(x.shape), np.ones((x.shape[1], 1, *size)), geometry, x.shape[1])
    return _linear(x, lambda v: forward(v) / count, lambda g: adjoint(g / count))


def _op_global_average_pool(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    axes = tuple(range(3, len(x.shape) + 1))
    shape, count = tuple(x.shape), int(np.prod(x.shape[2:]))
    return _linear(x, lambda v: v.mean(axis=axes, keepdims=True),
                   lambda g: np.broadcast_to(g / count, (g.shape[0], *shape)))


def _op_batch_norm(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x, params = args[0], args[1:5]
    if attrs.get("training_mode", 0):
        raise NodeError("training_mode BatchNormalization is not supported")
    if len(params) != 4 or not all(isinstance(p, np.ndarray) for p in params):
        raise NodeError("scale, B, mean and var must be constants")
    scale, shift, mean, var = (as_float(p) for p in params)
    if len(x.shape) < 2 or any(p.shape != (x.shape[1],) for p in (scale, shift, mean, var)):
        raise NodeError(f"parameters must have one value per channel of the input of shape {tuple(x.shape)}")
    factor = scale / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
    per_channel = (-1,) + (1,) * (len(x.shape) - 2)
    y = _scale(x, factor.reshape(per_channel)) if isinstance(x, Affine) else as_float(x) * factor.reshape(per_channel)
    return _add(y, (shift - mean * factor).reshape(per_channel), 1.0)


def _op_dropout(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    training = args[2] if len(args) > 2 else None
    if isinstance(training, Affine) or (training is not None and training.any()):
        raise NodeError("training_mode Dropout is random, only inference is supported")
    return args[0]


def _op_transpose(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    rank = len(x.shape)
    perm = [int(p) for p in attrs.get("perm", range(rank - 1, -1, -1))]
    if sorted(perm) != list(range(rank)):
        raise NodeError(f"perm {perm} is not a permutation of {rank} axes")
    inverse = np.argsort(perm)
    return _linear(x, lambda v: v.transpose(0, *(p + 1 for p in perm)),
                   lambda g: g.transpose(0, *(int(p) + 1 for p in inverse)))


def _op_pad(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    mode = text(attrs, "mode", "constant")
    if mode != "constant":
        raise NodeError(f"pad mode {mode!r} is not supported (only 'constant')")
    rank = len(x.shape)
    if opset >= 11:
        pads = ints(args[1], "pads")
        value = args[2] if len(args) > 2 else None
        if isinstance(value, Affine):
            raise NodeError("constant_value must be a constant")
        fill = 0.0 if value is None or value.size == 0 else float(value.reshape(-1)[0])
        axes = ints(args[3], "axes") if len(args) > 3 and args[3] is not None else list(range(rank))
    else:
        pads, fill, axes = [int(p) for p in required(attrs, "pads")], float(attrs.get("value", 0.0)), list(range(rank))
    if len(pads) != 2 * len(axes) or any(not -rank <= a < rank for a in axes):
        raise NodeError(f"pads {pads} do not fit axes {axes} of a rank-{rank} tensor")
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a % rank] = (pads[i], pads[i + len(axes)])
    crop = tuple(slice(max(-b, 0), size - max(-e, 0)) for size, (b, e) in zip(x.shape, widths, strict=True))
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    if isinstance(x, np.ndarray):
        return np.pad(x[crop], grow, constant_values=fill)
    inner = tuple(slice(b, b + s.stop - s.start) for (b, _), s in zip(grow, crop, strict=True))
    restore = [(0, 0)] + [(s.start, size - s.stop) for s, size in zip(crop, x.shape, strict=True)]
    cropped = tuple(s.stop - s.start for s in crop)
    offset = np.pad(np.zeros(cropped), grow, constant_values=fill)
    return lift(x, lambda v: np.pad(v[(slice(None), *crop)], [(0, 0), *grow]),
                lambda g: np.pad(g[(slice(None), *inner)], restore), offset)


def _op_concat(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    axis = int(required(attrs, "axis"))
    if all(isinstance(a, np.ndarray) for a in args):
        return np.concatenate(args, axis=axis)
    rank = len(args[0].shape)
    if not -rank <= axis < rank:
        raise NodeError(f"axis {axis} out of range for rank {rank}")
    axis = axis % rank + 1  # on batches
    parts = [a for a in args if isinstance(a, Affine)]
    shapes = [tuple(a.shape) for a in args]
    is_affine = [isinstance(a, Affine) for a in args]
    ends = np.cumsum([s[axis - 1] for s in shapes])[:-1]
    offset = np.concatenate([np.zeros(s) if lin else as_float(a) for a, s, lin in zip(args, shapes, is_affine,
                                                                                      strict=True)], axis=axis - 1)

    def forward(*vs: np.ndarray) -> np.ndarray:
        it = iter(vs)
        rows = vs[0].shape[0]
        return np.concatenate([next(it) if lin else np.zeros((rows, *s)) for s, lin in zip(shapes, is_affine,
                                                                                             strict=True)], axis=axis)

    def adjoint(g: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(piece for piece, lin in zip(np.split(g, ends, axis=axis), is_affine, strict=True) if lin)

    return combine(parts, forward, adjoint, offset)


def _op_slice(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    if opset >= 10:
        starts, ends = ints(args[1], "starts"), ints(args[2], "ends")
        axes = ints(args[3], "axes") if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = ints(args[4], "steps") if len(args) > 4 and args[4] is not None else [1] * len(starts)
    else:
        starts, ends = list(required(attrs, "starts")), list(required(attrs, "ends"))
        axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
    rank = len(x.shape)
    if not len(starts) == len(ends) == len(axes) == len(steps) or any(not -rank <= a < rank for a in axes):
        raise NodeError(f"starts {starts}, ends {ends}, axes {axes} and steps {steps} do not fit rank {rank}")
    if 0 in steps:
        raise NodeError("slice step 0")
    index = [slice(None)] * rank
    for start, end, a, step in zip(starts, ends, axes, steps, strict=True):
        index[a % rank] = _onnx_slice(start, end, step, x.shape[a % rank])
    where = tuple(index)
    if isinstance(x, np.ndarray):
        return x[where]
    shape = tuple(x.shape)

    def adjoint(g: np.ndarray) -> np.ndarray:
        out = np.zeros((g.shape[0], *shape))
        out[(slice(None), *where)] = g
        return out

    return lift(x, lambda v: v[(slice(None), *where)], adjoint)


def _onnx_slice(start: int, end: int, step: int, dim: int) -> slice:
    """ONNX's clamped slice bounds along an axis of length `dim` as a Python slice."""
    start, end = (v + dim if v < 0 else v for v in (start, end))
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


def _op_cast(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    dtype = np_dtype(int(required(attrs, "to")))
    if isinstance(x, np.ndarray):
        return x.astype(dtype)
    if dtype.kind != "f":
        raise NodeError(f"casts an input-dependent tensor to {dtype} (only float types keep it linear)")
    return x


def _op_constant_of_shape(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    shape = ints(args[0], "shape")
    value = attrs["value"] if "value" in attrs else np.zeros(1, dtype=np.float32)
    return np.full(shape, value.reshape(-1)[0], dtype=value.dtype)


def _op_shape(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    shape = np.array(x.shape, dtype=np.int64)
    return shape[attrs.get("start", 0) : attrs.get("end", len(shape))]


def _op_gather(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    x = args[0]
    indices = int_array(args[1], "indices")
    axis = int(attrs.get("axis", 0))
    rank = len(x.shape)
    if not -rank <= axis < rank or np.any((indices < -x.shape[axis]) | (indices >= x.shape[axis])):
        raise NodeError(f"indices or axis {axis} out of range for shape {tuple(x.shape)}")
    if isinstance(x, np.ndarray):
        return np.take(x, indices, axis=axis)
    axis %= rank
    shape, flat = tuple(x.shape), indices.reshape(-1) % x.shape[axis]

    def adjoint(g: np.ndarray) -> np.ndarray:
        rows = g.shape[0]
        out = np.zeros((rows, *shape))
        grouped = g.reshape(rows, *shape[:axis], flat.size, *shape[axis + 1 :])
        np.add.at(np.moveaxis(out, axis + 1, 0), flat, np.moveaxis(grouped, axis + 1, 0))
        return out

    return lift(x, lambda v: np.take(v, indices, axis=axis + 1), adjoint)


HANDLERS: dict[str, Handler] = {
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
    "Mod": _op_mod,
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
    "Slice": _op_slice,
    "Cast": _op_cast,
    "ConstantOfShape": _op_constant_of_shape,
}
