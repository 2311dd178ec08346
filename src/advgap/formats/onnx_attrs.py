"""Reading ONNX node arguments and attributes: constant integers, floats, text, and sliding-window geometry."""

from __future__ import annotations

from typing import Any

import numpy as np

from advgap.formats.affine import Affine, NodeError

Value = Affine | np.ndarray
Args = list[Value | None]
Attrs = dict[str, Any]
Window = tuple[list[int], list[int], list[tuple[int, int]]]


def as_float(c: np.ndarray) -> np.ndarray:
    if c.dtype.kind not in "fiu":
        raise NodeError(f"constant of type {c.dtype} cannot enter arithmetic")
    return c.astype(np.float64)


def int_array(v: Value | None, what: str) -> np.ndarray:
    if not isinstance(v, np.ndarray) or v.dtype.kind not in "iu":
        raise NodeError(f"{what} must be a constant integer tensor")
    return v.astype(np.int64)


def ints(v: Value | None, what: str) -> list[int]:
    return [int(d) for d in int_array(v, what).reshape(-1)]


def required(attrs: Attrs, key: str) -> Any:
    if key not in attrs:
        raise NodeError(f"missing attribute {key!r}")
    return attrs[key]


def text(attrs: Attrs, key: str, default: str) -> str:
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def window(attrs: Attrs, spatial: tuple[int, ...], kernel: tuple[int, ...]) -> Window:
    """Strides, dilations and (begin, end) pads per spatial axis of a Conv or pooling node, auto_pad resolved."""
    d = len(spatial)
    strides = [int(s) for s in attrs.get("strides", [1] * d)]
    dilations = [int(s) for s in attrs.get("dilations", [1] * d)]
    if len(strides) != d or len(dilations) != d or min(strides + dilations) < 1:
        raise NodeError(f"strides {strides} and dilations {dilations} must be {d} positive integers")
    auto_pad = text(attrs, "auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0] * 2 * d)]
        if len(pads) != 2 * d or min(pads) < 0:
            raise NodeError(f"pads {pads} must be {2 * d} non-negative integers")
        return strides, dilations, list(zip(pads[:d], pads[d:], strict=True))
    if auto_pad == "VALID":
        return strides, dilations, [(0, 0)] * d
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise NodeError(f"unknown auto_pad {auto_pad!r}")
    pairs = []
    for size, k, s, dil in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * dil + 1 - size)
        small, large = total // 2, total - total // 2
        pairs.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
    return strides, dilations, pairs


def out_size(size: int, k: int, stride: int, dilation: int, pad: tuple[int, int], ceil: bool = False) -> int:
    """Output length of a sliding window along one axis (ceil: count a last, partial window)."""
    span = size + sum(pad) - (k - 1) * dilation - 1
    if span < 0:
        raise NodeError(f"kernel extent {(k - 1) * dilation + 1} exceeds the padded input size {size + sum(pad)}")
    return (-(-span // stride) if ceil else span // stride) + 1


def pool_kernel(attrs: Attrs, x: Value) -> tuple[tuple[int, ...], tuple[int, ...], Window]:
    """The spatial shape of a pooling node's input, its kernel_shape and its window."""
    if len(x.shape) < 3:
        raise NodeError(f"input must have spatial axes, got shape {tuple(x.shape)}")
    spatial, size = tuple(x.shape[2:]), tuple(int(k) for k in required(attrs, "kernel_shape"))
    if len(size) != len(spatial):
        raise NodeError(f"kernel_shape {list(size)} does not match the input's {len(spatial)} spatial axes")
    return spatial, size, window(attrs, spatial, size)
