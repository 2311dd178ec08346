"""Sound bounds on a ReluNet over an input box: interval arithmetic and backward linear relaxation (CROWN).

Every hidden layer k has pre-activation z_k = W_k h_k + b_k (h_0 = x, h_{k+1} = relu(z_k)). `LayerBounds` holds
elementwise lower/upper bounds of each z_k for the hidden layers. ReLU splits of a branch-and-bound node are
`phases`: per hidden layer an int8 array, +1 forced active (z >= 0), -1 forced inactive (z <= 0), 0 free; they clamp
the bounds, which is sound on the node's sub-domain.

CROWN relaxation of relu(z) on [l, u] with l < 0 < u: upper line u(z - l)/(u - l), lower line alpha·z with alpha in
[0, 1] (default: 1 if u > -l else 0, as in DeepPoly). Bounds are computed in float64; they are exact real-arithmetic
bounds up to float64 rounding, which the engine absorbs with a safety margin (see `api.SOUNDNESS_MARGIN`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advgap.verify.network import ReluNet


@dataclass(frozen=True)
class LayerBounds:
    """Pre-activation bounds of every hidden layer: lower[k], upper[k] of shape (n_k,)."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]

    def unstable(self, k: int) -> np.ndarray:
        """Boolean mask of layer k's neurons whose sign is not fixed by the bounds."""
        return (self.lower[k] < 0) & (self.upper[k] > 0)

    def n_unstable(self) -> int:
        return int(sum(self.unstable(k).sum() for k in range(len(self.lower))))


def box_min(coeffs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact minimum of each row of `coeffs @ x` over the box [lo, hi]."""
    return np.maximum(coeffs, 0.0) @ lo + np.minimum(coeffs, 0.0) @ hi


def relu_relaxation(
    lower: np.ndarray, upper: np.ndarray, alpha: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes and intercept with alpha·z <= relu(z) <= up_slope·z + up_icpt on [lower, upper]."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    denom = np.where(unstable, upper - lower, 1.0)
    up_slope = np.where(active, 1.0, np.where(unstable, upper / denom, 0.0))
    up_icpt = np.where(unstable, -up_slope * lower, 0.0)
    default = (upper > -lower).astype(np.float64)
    low_slope = np.where(active, 1.0, np.where(unstable, default if alpha is None else alpha, 0.0))
    return low_slope, up_slope, up_icpt


def backward_lower(
    net: ReluNet,
    bounds: LayerBounds,
    coeffs: np.ndarray,
    layer: int,
    lo: np.ndarray,
    hi: np.ndarray,
    alphas: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Lower bound of each row of `coeffs @ z_layer` over the box, by backward linear relaxation.

    `layer` indexes the affine layer whose output is bounded (len(net.weights) - 1 for the logits); `bounds`
    must cover the hidden layers before it. `alphas[k]` optionally sets lower ReLU slopes of hidden layer k, shape
    (n_k,) or (rows, n_k).
    """
    lam = np.array(coeffs, dtype=np.float64)
    const = np.zeros(lam.shape[0])
    for j in range(layer, -1, -1):
        const += lam @ net.biases[j]
        lam = lam @ net.weights[j]
        if j == 0:
            break
        alpha = None if alphas is None else alphas[j - 1]
        low_slope, up_slope, up_icpt = relu_relaxation(bounds.lower[j - 1], bounds.upper[j - 1], alpha)
        positive = lam >= 0
        const += np.where(positive, 0.0, lam * up_icpt).sum(axis=1)
        lam = np.where(positive, lam * low_slope, lam * up_slope)
    return const + box_min(lam, lo, hi)


def _clamp(lower: np.ndarray, upper: np.ndarray, phase: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if phase is None:
        return lower, upper
    return np.where(phase > 0, np.maximum(lower, 0.0), lower), np.where(phase < 0, np.minimum(upper, 0.0), upper)


def interval_bounds(
    net: ReluNet, lo: np.ndarray, hi: np.ndarray, phases: Sequence[np.ndarray] | None = None
) -> LayerBounds:
    """Interval-arithmetic pre-activation bounds of every hidden layer (exact for the first layer)."""
    lowers, uppers = [], []
    h_lo, h_hi = lo, hi
    for k in range(len(net.weights) - 1):
        w, b = net.weights[k], net.biases[k]
        z_lo = np.maximum(w, 0) @ h_lo + np.minimum(w, 0) @ h_hi + b
        z_hi = np.maximum(w, 0) @ h_hi + np.minimum(w, 0) @ h_lo + b
        z_lo, z_hi = _clamp(z_lo, z_hi, None if phases is None else phases[k])
        lowers.append(z_lo)
        uppers.append(z_hi)
        h_lo, h_hi = np.maximum(z_lo, 0), np.maximum(z_hi, 0)
    return LayerBounds(tuple(lowers), tuple(uppers))


def crown_bounds(
    net: ReluNet, lo: np.ndarray, hi: np.ndarray, phases: Sequence[np.ndarray] | None = None
) -> LayerBounds:
    """CROWN pre-activation bounds of every hidden layer, intersected with interval bounds."""
    ibp = interval_bounds(net, lo, hi, phases)
    lowers: list[np.ndarray] = [ibp.lower[0]]
    uppers: list[np.ndarray] = [ibp.upper[0]]
    for k in range(1, len(net.weights) - 1):
        partial = LayerBounds(tuple(lowers), tuple(uppers))
        eye = np.eye(net.weights[k].shape[0])
        z_lo = np.maximum(backward_lower(net, partial, eye, k, lo, hi), ibp.lower[k])
        z_hi = np.minimum(-backward_lower(net, partial, -eye, k, lo, hi), ibp.upper[k])
        z_lo, z_hi = _clamp(z_lo, z_hi, None if phases is None else phases[k])
        lowers.append(z_lo)
        uppers.append(z_hi)
    return LayerBounds(tuple(lowers), tuple(uppers))
