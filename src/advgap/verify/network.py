"""ReluNet: a feed-forward network of affine layers with ReLU between them, on plain numpy weights.

Weight layout (stated once, used everywhere): layer k maps h_{k} to h_{k+1} = W_k @ h_k + b_k with
W_k of shape (out, in) — PyTorch's `nn.Linear` layout. ReLU follows every layer but the last. Inputs live in
[0, 1]^n_inputs. All arithmetic is float64.

A weight is a dense array, or a `scipy.sparse.csr_array` where few of its entries are non-zero (a convolution's
matrix, a max-pool tree level): products with dense arrays (`h @ W.T`, `ν @ W`, `W @ m`) give dense arrays either
way; `positive_part`, `negative_part`, `dense_rows` and `row_entries` cover the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse

from advgap.errors import ModelFormatError

MAX_ABS_WEIGHT = float(np.finfo(np.float32).max)
SPARSE_DENSITY = 0.06  # a weight at most this dense is kept sparse: products with it are faster (BENCHMARKS.md)
SPARSE_MIN_ENTRIES = 2**16  # ... if it is at least this large

Weight = np.ndarray | sparse.csr_array


def positive_part(w: Weight) -> Weight:
    """max(W, 0), in W's own storage."""
    return w.maximum(0.0) if sparse.issparse(w) else np.maximum(w, 0.0)


def negative_part(w: Weight) -> Weight:
    """min(W, 0), in W's own storage."""
    return w.minimum(0.0) if sparse.issparse(w) else np.minimum(w, 0.0)


def dense_rows(w: Weight, rows: np.ndarray | int | slice) -> np.ndarray:
    """W[rows] as a dense array (any index numpy takes on the first axis)."""
    if not sparse.issparse(w):
        return w[rows]
    index = np.arange(*rows.indices(w.shape[0])) if isinstance(rows, slice) else np.asarray(rows)
    return w[index.reshape(-1)].toarray().reshape(*index.shape, w.shape[1])


def row_entries(w: Weight, row: int) -> tuple[np.ndarray, np.ndarray]:
    """The columns and values of the non-zeros of row `row` (what a solver's sparse row takes)."""
    if sparse.issparse(w):
        span = slice(w.indptr[row], w.indptr[row + 1])
        return w.indices[span], w.data[span]
    cols = np.flatnonzero(w[row])
    return cols, w[row, cols]


def dense(w: Weight) -> np.ndarray:
    """W as a dense array (for formats that only hold dense matrices)."""
    return w.toarray() if sparse.issparse(w) else w


def weight_bytes(w: Weight) -> int:
    """Bytes a weight takes in its storage."""
    return int(w.data.nbytes + w.indices.nbytes + w.indptr.nbytes) if sparse.issparse(w) else int(w.nbytes)


def _stored(w: Weight) -> Weight:
    """The storage the engine uses for `w`: CSR when it is large and at most SPARSE_DENSITY dense, else dense."""
    if sparse.issparse(w):
        w = sparse.csr_array(w, dtype=np.float64)
        w.eliminate_zeros()
        w.sum_duplicates()
        if w.size > SPARSE_DENSITY * w.shape[0] * w.shape[1] or w.shape[0] * w.shape[1] < SPARSE_MIN_ENTRIES:
            return w.toarray()
        return w
    if w.size >= SPARSE_MIN_ENTRIES and np.count_nonzero(w) <= SPARSE_DENSITY * w.size:
        return sparse.csr_array(w)
    return w


def _values(w: Weight) -> np.ndarray:
    """The stored values of a weight (its non-zeros if sparse)."""
    return w.data if sparse.issparse(w) else w


def _real_array(values: object, layer: int, what: str) -> np.ndarray:
    """`values` as a float64 array; ModelFormatError unless they are real numbers (complex parts are not dropped)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ModelFormatError(f"layer {layer}: {what} has dtype {array.dtype}, expected real numbers")
    return np.array(array, dtype=np.float64)


@dataclass(frozen=True)
class ReluNet:
    """Affine layers `weights[k] @ h + biases[k]`, ReLU after all but the last."""

    weights: tuple[Weight, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_layers(cls, layers: Sequence[tuple[Weight, np.ndarray]]) -> ReluNet:
        """Build from (W, b) pairs (W dense or scipy sparse), checking shapes and values; copies to read-only
        float64, each W in the storage `_stored` picks.

        Every file format's loader ends here, so all formats accept the same weights: real numbers, finite and
        within float32 range (what ONNX files and torch exports hold; larger weights overflow the bounds).
        """
        if not layers:
            raise ModelFormatError("network has no layers")
        weights, biases = [], []
        for k, (w, b) in enumerate(layers):
            b = _real_array(b, k, "bias").reshape(-1)
            if sparse.issparse(w):
                _real_array(w.data, k, "weight")
                if w.ndim == 2:
                    w = sparse.csr_array(w, dtype=np.float64, copy=True)
                    try:
                        w.check_format(full_check=True)  # out-of-range indices would crash the products below
                    except ValueError as exc:
                        raise ModelFormatError(f"layer {k}: malformed sparse weight ({exc})") from exc
            else:
                w = _real_array(w, k, "weight")
            if w.ndim != 2:
                raise ModelFormatError(f"layer {k}: weight must be 2-D (out, in), got shape {w.shape}")
            if b.shape[0] != w.shape[0]:
                raise ModelFormatError(f"layer {k}: bias has {b.shape[0]} entries, weight has {w.shape[0]} rows")
            if weights and w.shape[1] != weights[-1].shape[0]:
                raise ModelFormatError(
                    f"layer {k}: expects {w.shape[1]} inputs but layer {k - 1} has {weights[-1].shape[0]} outputs"
                )
            values = _values(w)
            if not (np.isfinite(values).all() and np.isfinite(b).all()):
                raise ModelFormatError(f"layer {k}: weights or biases contain NaN or inf")
            if max(np.abs(values).max(initial=0.0), np.abs(b).max(initial=0.0)) > MAX_ABS_WEIGHT:
                raise ModelFormatError(f"layer {k}: weights or biases exceed the float32 range ({MAX_ABS_WEIGHT:.3g})")
            w = _stored(w)
            _values(w).setflags(write=False)
            b.setflags(write=False)
            weights.append(w)
            biases.append(b)
        return cls(tuple(weights), tuple(biases))

    @cached_property
    def weights_t(self) -> tuple[Weight, ...]:
        """Transposes (in, out) of the weights, contiguous or CSR: `h @ W.T` is much faster on them."""
        return tuple(sparse.csr_array(w.T) if sparse.issparse(w) else np.ascontiguousarray(w.T)
                     for w in self.weights)

    @cached_property
    def single(self) -> ReluNet:
        """This net in float32, for the engine's heuristics (which split, which slopes): twice as fast, and never
        the source of a bound it reports (those are computed in float64)."""
        return ReluNet(tuple(w.astype(np.float32) for w in self.weights),
                       tuple(b.astype(np.float32) for b in self.biases))

    @property
    def n_inputs(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n_outputs(self) -> int:
        return self.weights[-1].shape[0]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(w.shape[0] for w in self.weights[:-1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits for inputs of shape (n_inputs,) or (batch, n_inputs), in float64."""
        h = np.asarray(x, dtype=np.float64)
        if h.shape[-1] != self.n_inputs:
            raise ModelFormatError(f"input has {h.shape[-1]} features, network expects {self.n_inputs}")
        last = len(self.weights) - 1
        for k, (wt, b) in enumerate(zip(self.weights_t, self.biases, strict=True)):
            h = h @ wt + b
            if k < last:
                h = np.maximum(h, 0.0)
        return h

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class (argmax of the logits) per input."""
        return np.argmax(self.forward(x), axis=-1)
