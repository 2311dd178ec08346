"""MaxPool and GlobalMaxPool as exact ReLU layers: max(a, b) = b + relu(a − b), one tree level per layer.

Each window's values are paired; a level is one ReLU layer holding relu(a − b) for every pair and pass-through
neurons for what must cross the layer unchanged (the b of each pair, a window's unpaired value), in one of two exact
forms: the values themselves — relu(v) when v is known to be non-negative (a non-negative combination of ReLU
outputs), else relu(v) and relu(−v) — or the base variables they depend on — relu(h) per ReLU output h ≥ 0,
relu(x) and relu(−x) per network input x. Base variables keep their sign on every box of non-negative inputs, so
their pass-throughs are stable and the bounds lose nothing on them; a value that may change sign makes an
unstable pair wherever it does. The form with fewer neurons is taken, a sign-changing value's pair counting twice
(four) and ties going to the base variables. A k-element window takes ⌈log2 k⌉ layers. Padding, dilations and
ceil_mode only change which values a window holds (ONNX pads max pooling with −inf). The tables of values and the
layers are CSR matrices: a tree level's row holds two entries, or a value's own few.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from advgap.formats.affine import Affine, Layers, NodeError, lift, matrix_map, reshape
from advgap.formats.onnx_attrs import Args, Attrs, Value, out_size, pool_kernel


def pool_windows(spatial: tuple[int, ...], kernel: tuple[int, ...], strides: list[int], dilations: list[int],
                 pads: list[tuple[int, int]], ceil: bool) -> tuple[tuple[int, ...], np.ndarray]:
    """Output spatial shape and, per output position, the flat spatial indices of its window (−1: padding)."""
    d = len(spatial)
    outs = tuple(out_size(*axis, ceil=ceil) for axis in zip(spatial, kernel, strides, dilations, pads, strict=True))
    flat = np.zeros((1,) * 2 * d, dtype=np.int64)
    valid = np.ones((1,) * 2 * d, dtype=bool)
    for a in range(d):
        coord = np.arange(outs[a])[:, None] * strides[a] - pads[a][0] + np.arange(kernel[a])[None, :] * dilations[a]
        shape = [1] * 2 * d
        shape[a], shape[d + a] = outs[a], kernel[a]
        coord = coord.reshape(shape)
        valid = valid & (coord >= 0) & (coord < spatial[a])
        flat = flat * spatial[a] + coord
    windows = np.where(valid, flat, -1).reshape(int(np.prod(outs)), int(np.prod(kernel)))
    if np.any((windows < 0).all(axis=1)):
        raise NodeError("a window lies entirely in the padding")
    return outs, windows


def _gather(x: Affine, index: np.ndarray) -> Affine:
    """The flat elements `index` of x, as a vector."""
    flat = reshape(x, (x.const.size,))
    size = x.const.size

    distinct = len(np.unique(index)) == len(index)

    def adjoint(g: np.ndarray) -> np.ndarray:
        out = np.zeros((g.shape[0], size))
        if distinct:
            out[:, index] = g
        else:
            np.add.at(out.T, index, g.T)
        return out

    return lift(flat, lambda v: v[:, index], adjoint)


def max_pool(x: Affine, windows: np.ndarray, shape: tuple[int, ...], layers: Layers) -> Affine:
    """The maxima of x over `windows` (rows of flat indices into x, −1 for none), shaped `shape`; appends the
    ReLU layers of the max tree to `layers`."""
    used, inverse = np.unique(windows[windows >= 0], return_inverse=True)
    windows = np.where(windows >= 0, 0, -1)
    windows[windows >= 0] = inverse
    if windows.shape[1] == 1:
        return reshape(_gather(x, used[windows[:, 0]]), shape)
    table, const = layers.matrix(_gather(x, used))
    table = sparse.csr_array(table)
    table.eliminate_zeros()
    signed_base = layers.depth == 0
    while windows.shape[1] > 1:
        windows, table, const, outputs = _level(windows, table, const, signed_base, layers)
        signed_base = False
    return reshape(matrix_map(table[windows[:, 0]], outputs, const[windows[:, 0]]), shape)


def _level(windows: np.ndarray, table: sparse.csr_array, const: np.ndarray, signed_base: bool, layers: Layers
           ) -> tuple[np.ndarray, sparse.csr_array, np.ndarray, Affine]:
    """One tree level: the ReLU layer pairing the values of every window; returns the windows of the level's
    maxima, as rows of a new table (and constants) over the layer's outputs, and those outputs. `table` @ base +
    `const` are the values the windows index."""
    windows = np.take_along_axis(windows, np.argsort(windows < 0, axis=1, kind="stable"), axis=1)
    if windows.shape[1] % 2:
        windows = np.pad(windows, [(0, 0), (0, 1)], constant_values=-1)
    a, b = windows[:, 0::2], windows[:, 1::2]  # b valid implies a valid: the valid values come first
    paired, alone = b >= 0, (a >= 0) & (b < 0)
    carried = np.unique(np.concatenate([b[paired], a[alone]]))
    n_pairs = int(paired.sum())
    plan = _Carry.choose(table[carried], const[carried], signed_base)
    rows = sparse.vstack([table[a[paired]] - table[b[paired]], plan.rows()], format="csr")
    bias = np.concatenate([const[a[paired]] - const[b[paired]], plan.bias()])
    outputs = layers.relu(rows, bias)
    # the new values: per window and pair, the carried value (b, or the unpaired a) plus relu(a − b) if paired
    keep = a >= 0
    source = np.searchsorted(carried, np.where(paired, b, a)[keep])
    pair_slot = np.full(a.shape, -1)
    pair_slot[paired] = np.arange(n_pairs)
    has_pair = pair_slot[keep] >= 0
    pairs = sparse.csr_array((np.ones(int(has_pair.sum())), (np.flatnonzero(has_pair), pair_slot[keep][has_pair])),
                             shape=(len(source), n_pairs))
    new_table = sparse.hstack([pairs, plan.rebuilt(source)], format="csr")
    new_const = plan.rebuilt_const(source)
    new_windows = np.full(a.shape, -1)
    new_windows[keep] = np.arange(len(source))
    return new_windows, new_table, new_const, outputs


class _Carry:
    """How carried values cross a ReLU layer: as themselves, or as the base variables they depend on."""

    def __init__(self, values: sparse.csr_array, const: np.ndarray, columns: np.ndarray | None,
                 doubled: np.ndarray):
        self.values, self.const, self.columns, self.doubled = values, const, columns, doubled

    @classmethod
    def choose(cls, values: sparse.csr_array, const: np.ndarray, signed_base: bool) -> _Carry:
        """The cheaper form (see the module docstring); `values` are rows over the base."""
        values.eliminate_zeros()
        columns = np.unique(values.indices)
        by_base = len(columns) * (2 if signed_base else 1)
        n = values.shape[0]
        negative_row = np.bincount(np.repeat(np.arange(n), np.diff(values.indptr)), weights=values.data < 0,
                                   minlength=n) > 0
        signed = np.ones(n, dtype=bool) if signed_base else negative_row | (const < 0)
        if by_base <= n + 3 * int(signed.sum()):
            return cls(values, const, columns, np.full(len(columns), signed_base))
        return cls(values, const, None, signed)

    def _signs(self) -> np.ndarray:
        """Per neuron, +1 or −1: the positive part of each carried quantity, then the negative parts of the
        doubled ones."""
        return np.concatenate([np.ones(len(self.doubled)), -np.ones(int(self.doubled.sum()))])

    def _which(self) -> np.ndarray:
        """Per neuron, the carried quantity (a base column index or a value row) it holds."""
        return np.concatenate([np.arange(len(self.doubled)), np.flatnonzero(self.doubled)])

    def rows(self) -> sparse.csr_array:
        """The layer's rows of the pass-through neurons, over the base."""
        which, signs = self._which(), self._signs()
        if self.columns is None:
            return sparse.csr_array(self.values[which].multiply(signs[:, None]))
        return sparse.csr_array((signs, (np.arange(len(which)), self.columns[which])),
                                shape=(len(which), self.values.shape[1]))

    def bias(self) -> np.ndarray:
        if self.columns is None:
            return self._signs() * self.const[self._which()]
        return np.zeros(len(self._which()))

    def rebuilt(self, carried: np.ndarray) -> sparse.csr_array:
        """Rows over the pass-through neurons reproducing the carried values with indices `carried` in
        `values`."""
        which, signs = self._which(), self._signs()
        neurons = np.arange(len(which))
        if self.columns is None:  # value which[t] is signs[t] · neuron t
            holds = sparse.csr_array((signs, (which, neurons)), shape=(self.values.shape[0], len(which)))
            return sparse.csr_array(holds[carried])
        # base column columns[which[t]] is signs[t] · neuron t
        holds = sparse.csr_array((signs, (self.columns[which], neurons)), shape=(self.values.shape[1], len(which)))
        return sparse.csr_array(self.values[carried] @ holds)

    def rebuilt_const(self, carried: np.ndarray) -> np.ndarray:
        return np.zeros(len(carried)) if self.columns is None else self.const[carried]


def _op_max_pool(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    spatial, size, (strides, dilations, pads) = pool_kernel(attrs, x)
    outs, windows = pool_windows(spatial, size, strides, dilations, pads, bool(attrs.get("ceil_mode", 0)))
    return _pool(x, windows, outs, layers)


def _op_global_max_pool(args: Args, attrs: Attrs, opset: int, layers: Layers) -> Value:
    (x,) = args
    if len(x.shape) < 3:
        raise NodeError(f"input must have spatial axes, got shape {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    return _pool(x, np.arange(int(np.prod(spatial)))[None, :], (1,) * len(spatial), layers)


def _pool(x: Value, windows: np.ndarray, outs: tuple[int, ...], layers: Layers) -> Value:
    """Max pooling of a tensor (N, C, *spatial) over the same spatial `windows` in every channel."""
    planes, plane = int(np.prod(x.shape[:2])), int(np.prod(x.shape[2:]))
    offsets = (np.arange(planes) * plane)[:, None, None]
    every = np.where(windows[None] >= 0, windows[None] + offsets, -1).reshape(-1, windows.shape[1])
    shape = (*x.shape[:2], *outs)
    if isinstance(x, Affine):
        return max_pool(x, every, shape, layers)
    values = np.where(every >= 0, x.reshape(-1)[every], -np.inf)
    return values.max(axis=1).reshape(shape).astype(x.dtype)


POOL_HANDLERS = {"MaxPool": _op_max_pool, "GlobalMaxPool": _op_global_max_pool}
