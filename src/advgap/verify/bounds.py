"""Sound bounds on a ReluNet over an input box: interval arithmetic and backward linear relaxation (CROWN).

Every hidden layer k has pre-activation z_k = W_k h_k + b_k (h_0 = x, h_{k+1} = relu(z_k)). `LayerBounds` holds
elementwise lower/upper bounds of each z_k for the hidden layers.

CROWN relaxation of relu(z) on [l, u] with l < 0 < u: upper line u(z - l)/(u - l), lower line alpha·z with alpha in
[0, 1] (here 1 if u > -l else 0, as in DeepPoly; branch and bound optimises it). Bounds are computed in float64;
they are exact real-arithmetic bounds up to float64 rounding, which the engine absorbs with a safety margin
(`bab.SOUNDNESS_MARGIN`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from advgap.verify.network import ReluNet, Weight, negative_part, positive_part

CHUNK = 256  # rows per backward pass when bounding a layer's neurons: the deadline is checked between chunks
SPARSE_BACKWARD_DENSITY = 0.05  # a sparse layer's CROWN coefficients stay sparse while at most this dense


@dataclass(frozen=True)
class LayerBounds:
    """Pre-activation bounds of every hidden layer: lower[k], upper[k] of shape (n_k,)."""

    lower: tuple[np.ndarray, ...]
    upper: tuple[np.ndarray, ...]


def box_min(coeffs: Weight, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact minimum of each row of `coeffs @ x` over the box [lo, hi] (coeffs dense or sparse)."""
    return positive_part(coeffs) @ lo + negative_part(coeffs) @ hi


def relu_relaxation(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slopes and intercept with alpha·z <= relu(z) <= up_slope·z + up_icpt on [lower, upper]."""
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    denom = np.where(unstable, upper - lower, 1.0)
    up_slope = np.where(active, 1.0, np.where(unstable, upper / denom, 0.0))
    up_icpt = np.where(unstable, -up_slope * lower, 0.0)
    default = (upper > -lower).astype(np.float64)
    low_slope = np.where(active, 1.0, np.where(unstable, default, 0.0))
    return low_slope, up_slope, up_icpt


# relax(k, nu) -> (slope, intercept, shift): h_{k+1} = relu(z_k) is replaced by slope·z_k + intercept (a bound valid
# in the direction of nu's signs), and `shift` (β terms of split neurons, or 0) is added to the coefficient of z_k.
Relax = Callable[[int, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | float]]


def back_substitute(net: ReluNet, nu: np.ndarray, kappa: np.ndarray, top: int, relax: Relax) -> tuple[
        np.ndarray, np.ndarray]:
    """The one CROWN back-substitution: rewrite nu·h_{top+1} + kappa as nu′·x + kappa′, layer by layer.

    nu: (..., n_top) coefficients on the outputs of hidden layer `top` (any leading batch dimensions), kappa the
    matching constants. Each hidden layer k = top, …, 0 is relaxed by `relax(k, nu)` (see `Relax`), then its affine
    map z_k = W_k h_k + b_k is substituted. Returns the input coefficients and constants.
    """
    kappa = np.array(kappa, dtype=np.result_type(nu, np.float32), copy=True)  # float64, or float32 for heuristics
    for k in range(top, -1, -1):
        slope, icpt, shift = relax(k, nu)
        zeta = nu * slope + shift
        kappa += (nu * icpt).sum(axis=-1) + zeta @ net.biases[k]
        nu = (zeta.reshape(-1, zeta.shape[-1]) @ net.weights[k]).reshape(*zeta.shape[:-1], -1)
    return nu, kappa


def crown_relax(bounds: LayerBounds) -> Relax:
    """CROWN's relaxation for a lower bound: the lower line where the coefficient is ≥ 0, the upper line elsewhere."""

    def relax(k: int, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        low_slope, up_slope, up_icpt = relu_relaxation(bounds.lower[k], bounds.upper[k])
        positive = nu >= 0
        return np.where(positive, low_slope, up_slope), np.where(positive, 0.0, up_icpt), 0.0

    return relax


def backward_lower(
    net: ReluNet,
    bounds: LayerBounds,
    coeffs: np.ndarray,
    layer: int,
    lo: np.ndarray,
    hi: np.ndarray,
) -> np.ndarray:
    """Lower bound of each row of `coeffs @ z_layer` over the box, by backward linear relaxation.

    `layer` indexes the affine layer whose output is bounded (len(net.weights) - 1 for the logits); `bounds`
    must cover the hidden layers before it.
    """
    lam = np.array(coeffs, dtype=np.float64)
    return _lower_from(net, bounds, lam @ net.weights[layer], lam @ net.biases[layer], layer, lo, hi)


def _lower_from(net: ReluNet, bounds: LayerBounds, nu: Weight, kappa: np.ndarray, layer: int, lo: np.ndarray,
                hi: np.ndarray) -> np.ndarray:
    """Lower bound of each row of `nu @ h_layer + kappa` (h_layer: the input of affine layer `layer`); `nu` may
    be sparse (`_sparse_back_substitute` takes it as far as it stays sparse)."""
    if sparse.issparse(nu):
        nu, kappa, layer = _sparse_back_substitute(net, bounds, nu, kappa, layer)
    if layer > 0:
        nu, kappa = back_substitute(net, nu, kappa, layer - 1, crown_relax(bounds))
    return kappa + box_min(nu, lo, hi)


def _sparse_back_substitute(net: ReluNet, bounds: LayerBounds, nu: sparse.csr_array, kappa: np.ndarray,
                            layer: int) -> tuple[Weight, np.ndarray, int]:
    """`back_substitute` with `crown_relax` on sparse coefficients: only their non-zeros are relaxed (a zero
    coefficient's relaxation adds nothing), while they stay at most SPARSE_BACKWARD_DENSITY dense. Returns the
    coefficients (sparse, or dense once they fill in) and constants over the input of affine layer `layer`."""
    kappa = np.array(kappa, dtype=np.float64, copy=True)
    while layer > 0 and sparse.issparse(nu):
        if nu.nnz > SPARSE_BACKWARD_DENSITY * nu.shape[0] * nu.shape[1]:
            return nu.toarray(), kappa, layer
        k = layer - 1
        low_slope, up_slope, up_icpt = relu_relaxation(bounds.lower[k], bounds.upper[k])
        positive, cols = nu.data >= 0, nu.indices
        row = np.repeat(np.arange(nu.shape[0]), np.diff(nu.indptr))
        kappa += np.bincount(row, weights=np.where(positive, 0.0, nu.data * up_icpt[cols]), minlength=nu.shape[0])
        zeta = sparse.csr_array((nu.data * np.where(positive, low_slope[cols], up_slope[cols]), cols, nu.indptr),
                                shape=nu.shape)
        kappa += zeta @ net.biases[k]
        nu = zeta @ net.weights[k]
        layer = k
    return nu, kappa, layer


def interval_bounds(net: ReluNet, lo: np.ndarray, hi: np.ndarray) -> LayerBounds:
    """Interval-arithmetic pre-activation bounds of every hidden layer (exact for the first layer)."""
    lowers, uppers = [], []
    h_lo, h_hi = lo, hi
    for k in range(len(net.weights) - 1):
        w, b = net.weights[k], net.biases[k]
        lowers.append(box_min(w, h_lo, h_hi) + b)
        uppers.append(-box_min(-w, h_lo, h_hi) + b)
        h_lo, h_hi = np.maximum(lowers[-1], 0), np.maximum(uppers[-1], 0)
    return LayerBounds(tuple(lowers), tuple(uppers))


def crown_bounds(net: ReluNet, lo: np.ndarray, hi: np.ndarray, deadline: float = np.inf) -> LayerBounds:
    """CROWN pre-activation bounds of every hidden layer, intersected with interval bounds. Neurons not reached by
    `deadline` (time.monotonic()) keep their interval bounds: sound, only looser."""
    ibp = interval_bounds(net, lo, hi)
    if not ibp.lower:  # no hidden layer: nothing to bound
        return ibp
    lowers: list[np.ndarray] = [ibp.lower[0]]
    uppers: list[np.ndarray] = [ibp.upper[0]]
    for k in range(1, len(net.weights) - 1):
        partial = LayerBounds(tuple(lowers), tuple(uppers))
        lower, upper = crown_layer(net, partial, k, lo, hi, ibp.lower[k], ibp.upper[k], deadline)
        lowers.append(lower)
        uppers.append(upper)
    return LayerBounds(tuple(lowers), tuple(uppers))


def crown_layer(
    net: ReluNet, partial: LayerBounds, k: int, lo: np.ndarray, hi: np.ndarray, lower: np.ndarray,
    upper: np.ndarray, deadline: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Layer k's bounds `lower`, `upper` intersected with CROWN's from `partial` (the bounds of layers < k), `CHUNK`
    neurons at a time until `deadline`; the neurons after it keep the bounds given."""
    lower, upper = lower.copy(), upper.copy()
    n = net.weights[k].shape[0]
    for first in range(0, n, CHUNK):
        if time.monotonic() > deadline:
            break
        rows = slice(first, min(first + CHUNK, n))
        w, b = net.weights[k][rows], net.biases[k][rows]  # CSR rows stay sparse
        lower[rows] = np.maximum(lower[rows], _lower_from(net, partial, w, b, k, lo, hi))
        upper[rows] = np.minimum(upper[rows], -_lower_from(net, partial, -w, -b, k, lo, hi))
    return lower, upper
