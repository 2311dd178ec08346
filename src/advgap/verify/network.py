"""ReluNet: a feed-forward network of affine layers with ReLU between them, on plain numpy weights.

Weight layout (stated once, used everywhere): layer k maps h_{k} to h_{k+1} = W_k @ h_k + b_k with
W_k of shape (out, in) — PyTorch's `nn.Linear` layout. ReLU follows every layer but the last. Inputs live in
[0, 1]^n_inputs. All arithmetic is float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from advgap.errors import ModelFormatError

MAX_ABS_WEIGHT = float(np.finfo(np.float32).max)


def _real_array(values: object, layer: int, what: str) -> np.ndarray:
    """`values` as a float64 array; ModelFormatError unless they are real numbers (complex parts are not dropped)."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ModelFormatError(f"layer {layer}: {what} has dtype {array.dtype}, expected real numbers")
    return np.array(array, dtype=np.float64)


@dataclass(frozen=True)
class ReluNet:
    """Affine layers `weights[k] @ h + biases[k]`, ReLU after all but the last."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_layers(cls, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> ReluNet:
        """Build from (W, b) pairs, checking shapes and values; copies to read-only float64.

        Every file format's loader ends here, so all formats accept the same weights: real numbers, finite and
        within float32 range (what ONNX files and torch exports hold; larger weights overflow the bounds).
        """
        if not layers:
            raise ModelFormatError("network has no layers")
        weights, biases = [], []
        for k, (w, b) in enumerate(layers):
            w, b = _real_array(w, k, "weight"), _real_array(b, k, "bias").reshape(-1)
            if w.ndim != 2:
                raise ModelFormatError(f"layer {k}: weight must be 2-D (out, in), got shape {w.shape}")
            if b.shape[0] != w.shape[0]:
                raise ModelFormatError(f"layer {k}: bias has {b.shape[0]} entries, weight has {w.shape[0]} rows")
            if weights and w.shape[1] != weights[-1].shape[0]:
                raise ModelFormatError(
                    f"layer {k}: expects {w.shape[1]} inputs but layer {k - 1} has {weights[-1].shape[0]} outputs"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise ModelFormatError(f"layer {k}: weights or biases contain NaN or inf")
            if max(np.abs(w).max(initial=0.0), np.abs(b).max(initial=0.0)) > MAX_ABS_WEIGHT:
                raise ModelFormatError(f"layer {k}: weights or biases exceed the float32 range ({MAX_ABS_WEIGHT:.3g})")
            w.setflags(write=False)
            b.setflags(write=False)
            weights.append(w)
            biases.append(b)
        return cls(tuple(weights), tuple(biases))

    @cached_property
    def weights_t(self) -> tuple[np.ndarray, ...]:
        """Contiguous transposes (in, out) of the weights: `h @ W.T` is much faster on them."""
        return tuple(np.ascontiguousarray(w.T) for w in self.weights)

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
