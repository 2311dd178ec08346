"""Branch and bound over sub-boxes of the input box, for nets with few inputs and wide boxes (ACAS Xu-like).

ReLU splitting needs many splits when a wide box leaves most neurons unstable; with a handful of inputs, halving
the box instead makes neurons stable quickly and the linear bounds tight. A stack holds the open sub-boxes (some
term not yet refuted there), already bounded. Each round pops a batch, bisects each box along one input and
bounds all children at once (`box_bounds`, a batched CROWN: intermediate bounds recomputed on every child).
A term (a conjunction of rows A_r·y <= b_r) is refuted on a child when a lower bound of min_x max_r (A_r·y − b_r)
there clears `SOUNDNESS_MARGIN` (`term_bounds`: the best row alone, or the best mix of two rows); a child
refuted for every term is dropped. Open children are tried for a counterexample (centre and the corners
minimising each term's linear bound, then a few PGD steps from the best points of the most promising boxes)
and pushed back, the most promising on top. An empty stack proves ROBUST; a counterexample counts only once
`Property.violated_by` replays it in float64.

Split dimension: the largest w_i · Σ_t (|λ_ti| / 2 + g_ti) over the box's open terms t, with w_i the box width,
λ_t the input coefficients of term t's linear lower bound (|λ_ti| w_i / 2: what the half away from the
minimising corner gains) and g_ti the relaxation error of that bound attributable to input i (Σ over unstable
neurons j of |ν_j| · (max relaxation gap of j / range of z_j) · |∂z_j/∂x_i|, ν_j the neuron's coefficient in
the bound; halving input i shrinks z_j's range by about |∂z_j/∂x_i| w_i / 2). Measured on 12 ACAS Xu
properties (30 s each): this rule 12 solved, 28 s in all; the relaxation term alone 12, 33 s; |λ| · w alone 7;
the widest input (relative to the root box) 4; choosing among the top 2 or 3 of this rule by bounding their
children (best summed child bounds) 12 / 11 solved but 1.7x / 2.7x slower.

Bounds: interval ∩ forward symbolic (linear bounds in x) ∩ CROWN for the neurons still unstable, then the output
rows by CROWN with `ALPHA_STEPS` supergradient steps on their lower ReLU slopes (α-CROWN on the last pass only:
without it the hardest ACAS Xu properties, 3-3 and 4-2 on property 2, time out at 60 s). Deciding boxes with
at most 3 unstable neurons by one LP per phase pattern (ReLU splitting to the end) was tried and dropped: no gain
on ACAS Xu, slower on tiny random nets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from advgap.verify.bab import SOUNDNESS_MARGIN
from advgap.verify.bounds import LayerBounds, back_substitute, relu_relaxation
from advgap.verify.falsify import input_gradient
from advgap.verify.network import ReluNet, dense, dense_rows, negative_part, positive_part
from advgap.verify.result import Verdict
from advgap.verify.spec import Property

SPLIT_MAX_INPUTS = 16  # `suits_input_split`: at most this many inputs ...
SPLIT_MIN_UNSTABLE = 16  # ... and more than this many unstable neurons on the root box
BATCH_BOXES = 512  # boxes split per round
ALPHA_STEPS = 4  # α steps on the output rows' bound
PGD_BOXES = 32  # boxes attacked by PGD per round (those whose best point is nearest to a violation)
PGD_STEPS = 8
MIN_WIDTH = 1e-9  # an input no wider than this fraction of the root box's width is not split further


def suits_input_split(net: ReluNet, root: LayerBounds) -> bool:
    """Whether `check_property` should split the input box rather than ReLUs, given the root box's bounds.

    Yes for at most SPLIT_MAX_INPUTS inputs and more than SPLIT_MIN_UNSTABLE unstable neurons: ReLU splitting's
    tree grows with the unstable neurons, input splitting's with the inputs. With few unstable neurons the
    per-term ReLU branch and bound / MILP is small and exact, and faster where the tightest region of a tiny
    net is a plateau that input splitting must tile finely (seen on random 4-8 neuron nets).
    """
    unstable = sum(int(((lower < 0) & (upper > 0)).sum()) for lower, upper in zip(root.lower, root.upper, strict=True))
    return net.n_inputs <= SPLIT_MAX_INPUTS and unstable > SPLIT_MIN_UNSTABLE


@dataclass(frozen=True)
class SplitOutcome:
    """Verdict of the input-split search; `point`/`term` set for COUNTEREXAMPLE (already replayed)."""

    verdict: Verdict
    point: np.ndarray | None
    term: int | None
    boxes: int  # sub-boxes bounded
    detail: str


@dataclass(frozen=True)
class _Rows:
    """All rows of the property's terms stacked: `A @ y − b`; term t owns rows starts[t]:starts[t + 1]."""

    A: np.ndarray
    b: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, prop: Property) -> _Rows:
        sizes = [t.A.shape[0] for t in prop.terms]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        return cls(np.vstack([t.A for t in prop.terms]), np.concatenate([t.b for t in prop.terms]), starts)

    def per_term(self, values: np.ndarray) -> np.ndarray:
        """Max over each term's rows of `values` (..., R) → (..., T)."""
        return np.maximum.reduceat(values, self.starts, axis=-1)


@dataclass(frozen=True)
class BoxBounds:
    """Batched CROWN on B boxes for R output rows: `lower` (B, R) bounds each row of `coeffs @ y` from below by
    its linear bound lam·x + const (lam (B, R, n), const (B, R)); `relax_gain` (B, R, n) is the relaxation error
    of that bound attributable to each input, per unit of the input's width."""

    lower: np.ndarray
    lam: np.ndarray
    const: np.ndarray
    relax_gain: np.ndarray


@dataclass(frozen=True)
class _Layer:
    """One hidden layer on B boxes: ReLU relaxation (lower slope, upper slope, upper intercept), the relaxation
    error per unit of pre-activation range for a positive / negative output coefficient (all (B, n_k)), and the
    mean |coefficient| of each input in the layer's symbolic bounds (B, n, n_k)."""

    relax: tuple[np.ndarray, np.ndarray, np.ndarray]
    error_pos: np.ndarray
    error_neg: np.ndarray
    influence: np.ndarray


def _concretize(lam: np.ndarray, const: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min over each box of lam·x + const: lam (B, R, n), const (B, R), lo/hi (B, n)."""
    pos = np.maximum(lam, 0.0)
    return const + np.einsum("brn,bn->br", pos, lo) + np.einsum("brn,bn->br", lam - pos, hi)


def _backward(
    net: ReluNet, relax: list[tuple[np.ndarray, ...]], lam: np.ndarray, const: np.ndarray, layer: int,
    nus: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Carry a linear lower bound `lam·h_layer + const` (lam (B, R, n_layer), const (B, R)) back to the input.

    `relax[j]` holds hidden layer j's ReLU relaxation for j < layer: lower slopes ((B, n_j), or (B, R, n_j) per
    row), upper slopes and intercepts (B, n_j). Returns the input coefficients (B, R, n) and constants (B, R);
    appends to `nus`, if given, the coefficients on each hidden layer's outputs (last layer first).
    """

    def lower_relax(j: int, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        low, up, icpt = relax[j]
        if nus is not None:
            nus.append(lam)
        positive = lam >= 0
        low = low if low.ndim == 3 else low[:, None, :]
        return np.where(positive, low, up[:, None, :]), np.where(positive, 0.0, icpt[:, None, :]), 0.0

    return back_substitute(net, lam, const, layer - 1, lower_relax)


def _symbolic_step(
    net: ReluNet, k: int, lin: tuple[np.ndarray, np.ndarray], relax: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Linear lower/upper functions (B, n + 1, n_k) of z_k in [x, 1] from those of z_{k−1} and its relaxation."""
    low, up, icpt = relax
    h_lo, h_hi = lin[0] * low[:, None, :], lin[1] * up[:, None, :]
    h_hi[:, -1] += icpt
    batch, width, n_prev = h_lo.shape
    w_pos, w_neg = positive_part(net.weights_t[k]), negative_part(net.weights_t[k])
    flat_lo, flat_hi = h_lo.reshape(-1, n_prev), h_hi.reshape(-1, n_prev)
    z_lo = (flat_lo @ w_pos + flat_hi @ w_neg).reshape(batch, width, -1)
    z_hi = (flat_hi @ w_pos + flat_lo @ w_neg).reshape(batch, width, -1)
    z_lo[:, -1] += net.biases[k]
    z_hi[:, -1] += net.biases[k]
    return z_lo, z_hi


def _symbolic_range(lin: tuple[np.ndarray, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Bounds (B, n_k) of z_k on each box from its linear lower/upper functions."""
    lower = _concretize(lin[0][:, :-1].transpose(0, 2, 1), lin[0][:, -1], lo, hi)
    upper = -_concretize(-lin[1][:, :-1].transpose(0, 2, 1), -lin[1][:, -1], lo, hi)
    return lower, upper


def _crown_rows(
    net: ReluNet, relax: list[tuple[np.ndarray, ...]], k: int, neurons: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CROWN lower and upper bounds (B, r) of the neurons `neurons` (B, r) of layer k on each box."""
    w, b = dense_rows(net.weights[k], neurons), net.biases[k][neurons]  # (B, r, n_{k-1}), (B, r)
    lam, const = _backward(net, relax, np.concatenate([w, -w], axis=1), np.concatenate([b, -b], axis=1), k)
    both = _concretize(lam, const, lo, hi)
    r = neurons.shape[1]
    return both[:, :r], -both[:, r:]


def _tighten(
    net: ReluNet, relax: list[tuple[np.ndarray, ...]], k: int, bounds: tuple[np.ndarray, np.ndarray],
    lo: np.ndarray, hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Intersect layer k's bounds with CROWN's, computed only for each box's unstable neurons.

    Boxes are grouped by their number of unstable neurons (1, 2, 3-4, 5-8, ...) so that few rows are padding.
    """
    lower, upper = bounds[0].copy(), bounds[1].copy()
    unstable = (lower < 0) & (upper > 0)
    counts = unstable.sum(axis=1)
    order = np.argsort(~unstable, axis=1, kind="stable")  # each box's unstable neurons first
    size = 1
    while size // 2 < counts.max():
        boxes = np.flatnonzero((counts > size // 2) & (counts <= size))
        size *= 2
        if boxes.size == 0:
            continue
        r = int(counts[boxes].max())
        neurons = order[boxes, :r]
        valid = np.take_along_axis(unstable[boxes], neurons, axis=1)
        sub_relax = [tuple(part[boxes] for part in layer) for layer in relax]
        new_lo, new_hi = _crown_rows(net, sub_relax, k, neurons, lo[boxes], hi[boxes])
        rows, cols = np.repeat(boxes, r).reshape(-1, r)[valid], neurons[valid]
        lower[rows, cols] = np.maximum(lower[rows, cols], new_lo[valid])
        upper[rows, cols] = np.minimum(upper[rows, cols], new_hi[valid])
    return lower, upper


def _layer(relax: tuple[np.ndarray, ...], lower: np.ndarray, upper: np.ndarray, lin: tuple[np.ndarray, ...]) -> _Layer:
    """A hidden layer's relaxation with its error sensitivities (max relaxation gap / range, zero if stable)."""
    width = np.where((lower < 0) & (upper > 0), upper - lower, np.inf)
    error_pos = np.where(relax[0] > 0, -lower, upper) / width  # lower line alpha·z, alpha in {0, 1}
    error_neg = -lower * upper / width / width  # upper (triangle) line
    influence = (np.abs(lin[0][:, :-1]) + np.abs(lin[1][:, :-1])) / 2
    return _Layer(relax, error_pos, error_neg, influence)


def _hidden_layers(net: ReluNet, lo: np.ndarray, hi: np.ndarray) -> list[_Layer]:
    """Every hidden layer's relaxation on each box.

    Pre-activation bounds are interval ∩ symbolic (forward linear bounds in x) ∩ CROWN, the last computed only
    for the neurons the first two leave unstable.
    """
    first = np.vstack([dense(net.weights_t[0]), net.biases[0]])
    lin = (np.broadcast_to(first, (lo.shape[0], *first.shape)),) * 2
    layers: list[_Layer] = []
    h_lo, h_hi = lo, hi
    for k in range(len(net.weights) - 1):
        relax = [layer.relax for layer in layers]
        if k > 0:
            lin = _symbolic_step(net, k, lin, relax[-1])
        w_pos, w_neg = positive_part(net.weights_t[k]), negative_part(net.weights_t[k])
        lower, upper = _symbolic_range(lin, lo, hi)
        lower = np.maximum(lower, h_lo @ w_pos + h_hi @ w_neg + net.biases[k])
        upper = np.minimum(upper, h_hi @ w_pos + h_lo @ w_neg + net.biases[k])
        if k > 0:
            lower, upper = _tighten(net, relax, k, (lower, upper), lo, hi)
        layers.append(_layer(relu_relaxation(lower, upper), lower, upper, lin))
        h_lo, h_hi = np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    return layers


def _alpha_step(
    net: ReluNet, layers: list[_Layer], alphas: list[np.ndarray], nus: list[np.ndarray], lam: np.ndarray,
    lo: np.ndarray, hi: np.ndarray, step: float,
) -> list[np.ndarray]:
    """One projected supergradient step on the per-row lower slopes α of the unstable neurons.

    At the box corner minimising the bound, ∂bound/∂α_j = ν_j ẑ_j where ν_j >= 0 (the lower line is used), ẑ the
    pre-activations of the relaxed (linearised) net there.
    """
    z = np.where(lam > 0, lo[:, None, :], hi[:, None, :]) @ net.weights_t[0] + net.biases[0]
    new = []
    for j, (layer, alpha, nu) in enumerate(zip(layers, alphas, nus, strict=True)):
        _, up, icpt = layer.relax
        positive = nu >= 0
        free = positive & ((up > 0) & (up < 1))[:, None, :]
        grad = np.where(free, nu * z, 0.0)
        scale = np.abs(grad).max(axis=2, keepdims=True) + 1e-12
        new.append(np.clip(alpha + step * grad / scale, 0.0, 1.0))
        if j + 1 < len(layers):
            h = np.where(positive, alpha * z, up[:, None, :] * z + icpt[:, None, :])
            z = h @ net.weights_t[j + 1] + net.biases[j + 1]
    return new


def _relax_gain(layers: list[_Layer], nus: list[np.ndarray]) -> np.ndarray:
    """Per row and input i: Σ over unstable neurons of |ν| × (error per unit range) × |∂z/∂x_i| (B, R, n)."""
    gain = 0.0
    for layer, nu in zip(layers, nus, strict=True):
        error = np.maximum(nu, 0.0) * layer.error_pos[:, None, :] - np.minimum(nu, 0.0) * layer.error_neg[:, None, :]
        gain = gain + np.einsum("brj,bij->bri", error, layer.influence)
    return gain


def box_bounds(net: ReluNet, lo: np.ndarray, hi: np.ndarray, coeffs: np.ndarray, alpha_steps: int = 0) -> BoxBounds:
    """CROWN lower bounds of `coeffs @ y` (coeffs (R, n_outputs)) on each of the boxes lo, hi (B, n).

    `alpha_steps` supergradient steps optimise the output rows' lower ReLU slopes (α-CROWN on the last pass;
    intermediate bounds keep CROWN's slopes); every step's bound is valid, the best per row is kept.
    """
    layers = _hidden_layers(net, lo, hi)
    last = len(net.weights) - 1
    shape = (lo.shape[0], coeffs.shape[0])
    lam0 = np.broadcast_to(coeffs @ net.weights[last], (*shape, net.weights[last].shape[1]))
    const0 = np.broadcast_to(coeffs @ net.biases[last], shape)
    alphas = [np.repeat(layer.relax[0][:, None, :], shape[1], axis=1) for layer in layers]
    best: tuple[np.ndarray, ...] | None = None
    for step in range(alpha_steps + 1):
        nus: list[np.ndarray] = []
        relax = [(a, layer.relax[1], layer.relax[2]) for a, layer in zip(alphas, layers, strict=True)]
        lam, const = _backward(net, relax, lam0, const0, last, nus)
        nus.reverse()
        current = (_concretize(lam, const, lo, hi), lam, const, *nus)
        if best is None:
            best = current
        else:
            better = current[0] > best[0]
            best = tuple(np.where(better.reshape(*better.shape, *[1] * (new.ndim - 2)), new, old)
                         for new, old in zip(current, best, strict=True))
        if step < alpha_steps:
            alphas = _alpha_step(net, layers, alphas, nus, lam, lo, hi, 0.5 / (1 + step) ** 0.5)
    lower, lam, const, *nus = best
    return BoxBounds(lower, lam, const, _relax_gain(layers, nus))


def _pair_bound(
    lam: np.ndarray, const: np.ndarray, first: int, second: int, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """max over s in [0, 1] of min over the box of (1 − s)·l_first + s·l_second, l_r = lam_r·x + const_r: exact,
    as the maximum of this concave piecewise-linear function of s lies at 0, 1 or where a coefficient changes
    sign. Returns the value and s per box (B,)."""
    a, d = lam[:, first], lam[:, second] - lam[:, first]  # (B, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kinks = np.where(d != 0, -a / d, 0.0)
    s = np.clip(np.concatenate([np.zeros((len(a), 1)), np.ones((len(a), 1)), kinks], axis=1), 0.0, 1.0)
    coef = a[:, None, :] + s[..., None] * d[:, None, :]  # (B, n + 2, n)
    value = (1 - s) * const[:, first, None] + s * const[:, second, None]
    value = value + np.minimum(coef * lo[:, None, :], coef * hi[:, None, :]).sum(axis=2)
    pick = np.argmax(value, axis=1)
    rows = np.arange(len(a))
    return value[rows, pick], s[rows, pick]


def term_bounds(
    bounds: BoxBounds, b: np.ndarray, terms: list[np.ndarray], lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds (B, T) of min over each box of max_r (A_r·y − b_r) for each term (its rows `terms[t]`), and
    the row weights μ (B, T, R) achieving them.

    Any μ >= 0 summing to 1 over a term's rows bounds it: where the term holds, every row is <= 0, so is their
    μ-mix and its linear lower bound. Tried: each row alone and the best mix of each pair of rows (exact).
    """
    const = bounds.const - b
    slack = bounds.lower - b
    batch, n_rows = slack.shape
    value = np.full((batch, len(terms)), -np.inf)
    mu = np.zeros((batch, len(terms), n_rows))
    for t, rows in enumerate(terms):
        pick = rows[np.argmax(slack[:, rows], axis=1)]
        value[:, t] = slack[np.arange(batch), pick]
        mu[np.arange(batch), t, pick] = 1.0
        for i, first in enumerate(rows):
            for second in rows[i + 1 :]:
                mixed, s = _pair_bound(bounds.lam, const, first, second, lo, hi)
                better = mixed > value[:, t]
                value[:, t] = np.where(better, mixed, value[:, t])
                mu[better, t] = 0.0
                mu[better, t, first], mu[better, t, second] = 1 - s[better], s[better]
    return value, mu


@dataclass
class _Queue:
    """Open, bounded sub-boxes as a stack: lo/hi (N, n), open terms (N, T), split scores (N, n)."""

    lo: np.ndarray
    hi: np.ndarray
    open: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return self.lo.shape[0]

    def push(self, other: _Queue) -> None:
        self.lo, self.hi = np.concatenate([self.lo, other.lo]), np.concatenate([self.hi, other.hi])
        self.open, self.score = np.concatenate([self.open, other.open]), np.concatenate([self.score, other.score])

    def pop(self, count: int) -> _Queue:
        """Remove and return the last `count` boxes."""
        cut = max(len(self) - count, 0)
        top = self.take(slice(cut, None))
        self.lo, self.hi, self.open, self.score = self.lo[:cut], self.hi[:cut], self.open[:cut], self.score[:cut]
        return top

    def take(self, keep: np.ndarray | slice) -> _Queue:
        return _Queue(self.lo[keep], self.hi[keep], self.open[keep], self.score[keep])


@dataclass(frozen=True)
class _Bounded:
    """A batch of bounded boxes: open terms (B, T), split scores (B, n), and per term the box corner minimising
    the term's linear bound (B, T, n)."""

    open: np.ndarray
    score: np.ndarray
    corners: np.ndarray

    def take(self, keep: np.ndarray) -> _Bounded:
        return _Bounded(self.open[keep], self.score[keep], self.corners[keep])


class _Search:
    """One input-split search on `prop`: its stacked rows, the root box's widths, counters and the found point."""

    def __init__(self, net: ReluNet, prop: Property) -> None:
        self.net, self.prop, self.rows = net, prop, _Rows.of(prop)
        self.root_width = prop.hi - prop.lo
        self.boxes = self.stuck = 0
        self.found: tuple[np.ndarray, int] | None = None
        sizes = np.diff(np.append(self.rows.starts, self.rows.A.shape[0]))
        self.term_of_row = np.repeat(np.arange(len(prop.terms)), sizes)
        self.term_rows = [np.flatnonzero(self.term_of_row == t) for t in range(len(prop.terms))]

    def bound(self, lo: np.ndarray, hi: np.ndarray, parent_open: np.ndarray) -> _Bounded:
        """Bound a batch of boxes; a term stays open where it was open and its bound does not clear the margin."""
        self.boxes += lo.shape[0]
        bounds = box_bounds(self.net, lo, hi, self.rows.A, ALPHA_STEPS)
        term_lb, mu = term_bounds(bounds, self.rows.b, self.term_rows, lo, hi)
        still_open = parent_open & (term_lb <= SOUNDNESS_MARGIN)
        lam = np.einsum("btr,brn->btn", mu, bounds.lam)  # each term's bound, as a linear function of x
        per_input = np.abs(lam) / 2 + np.einsum("btr,brn->btn", mu, bounds.relax_gain)
        width = hi - lo
        tie = 1e-12 * np.divide(width, self.root_width, out=np.zeros_like(width), where=self.root_width > 0)
        score = (per_input * still_open[:, :, None]).sum(axis=1) * width + tie
        score = np.where(width > MIN_WIDTH * self.root_width, score, 0.0)
        return _Bounded(still_open, score, np.where(lam > 0, lo[:, None, :], hi[:, None, :]))

    def values(self, points: np.ndarray, open_terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point (B, P, n) the least violation max_r (A_r·y − b_r) over its box's open terms, and that term."""
        per_term = self.rows.per_term(self.net.forward(points) @ self.rows.A.T - self.rows.b)  # (B, P, T)
        per_term = np.where(open_terms[:, None, :], per_term, np.inf)
        term = np.argmin(per_term, axis=-1)
        return np.take_along_axis(per_term, term[..., None], axis=-1)[..., 0], term

    def accept(self, point: np.ndarray) -> bool:
        """Record `point` if it replays in float64 inside the box as satisfying a term of the property."""
        found = self.prop.replay(self.net.forward, point)
        if found is not None:
            self.found = found
        return found is not None

    def accept_any(self, points: np.ndarray, values: np.ndarray) -> bool:
        """Try the points whose value is <= 0, most violating first."""
        return any(self.accept(points[i]) for i in np.flatnonzero(values <= 0)[np.argsort(values[values <= 0])])


def _split(search: _Search, parents: _Queue) -> tuple[np.ndarray, np.ndarray, _Bounded]:
    """Bisect each parent along its best-scored input and bound the children (2B', n); a parent with no input
    wide enough to split counts as stuck and is dropped."""
    dims = np.argmax(parents.score, axis=1)
    rows = np.arange(len(parents))
    splittable = parents.score[rows, dims] > 0
    search.stuck += int((~splittable).sum())
    parents, dims = parents.take(splittable), dims[splittable]
    rows = np.arange(len(parents))
    mid = (parents.lo[rows, dims] + parents.hi[rows, dims]) / 2
    lo, hi = np.repeat(parents.lo, 2, axis=0), np.repeat(parents.hi, 2, axis=0)
    hi[2 * rows, dims] = mid
    lo[2 * rows + 1, dims] = mid
    return lo, hi, search.bound(lo, hi, np.repeat(parents.open, 2, axis=0))


def _pgd(search: _Search, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, terms: np.ndarray) -> None:
    """Signed-gradient steps per point inside its box on its term's most violated row; replays hits."""
    for step in range(PGD_STEPS + 1):
        slack = search.net.forward(x) @ search.rows.A.T - search.rows.b
        slack = np.where(search.term_of_row[None, :] == terms[:, None], slack, -np.inf)
        if search.accept_any(x, slack.max(axis=1)) or step == PGD_STEPS:
            return
        grad = input_gradient(search.net, x, -search.rows.A[np.argmax(slack, axis=1)])
        size = 0.25 * (1.0 - step / PGD_STEPS) + 0.02
        x = np.clip(x + size * (hi - lo) * np.sign(grad), lo, hi)


def _falsify(search: _Search, lo: np.ndarray, hi: np.ndarray, bounded: _Bounded) -> np.ndarray:
    """Try each box's centre and term corners, then PGD from the best points of the most promising boxes.

    Returns each box's least violation found (a box where it is <= 0 had a point that failed the replay)."""
    points = np.concatenate([((lo + hi) / 2)[:, None, :], bounded.corners], axis=1)  # (B, 1 + T, n)
    values, terms = search.values(points, bounded.open)
    best = np.argmin(values, axis=1)
    rows = np.arange(len(lo))
    value, term, start = values[rows, best], terms[rows, best], points[rows, best]
    if not search.accept_any(start, value):
        top = np.argsort(value)[:PGD_BOXES]
        _pgd(search, start[top], lo[top], hi[top], term[top])
    return value


def _round(search: _Search, parents: _Queue) -> _Queue:
    """Split a batch of parents, bound the children, try the open ones for counterexamples; return those."""
    if not parents.score.max(initial=0.0) > 0:  # none can be split
        search.stuck += len(parents)
        return parents.take(slice(0, 0))
    lo, hi, bounded = _split(search, parents)
    keep = bounded.open.any(axis=1)
    lo, hi, bounded = lo[keep], hi[keep], bounded.take(keep)
    if not len(lo):
        return _Queue(lo, hi, bounded.open, bounded.score)
    order = np.argsort(-_falsify(search, lo, hi, bounded), kind="stable")  # most promising last: popped first
    return _Queue(lo[order], hi[order], bounded.open[order], bounded.score[order])


def input_split_search(net: ReluNet, prop: Property, deadline: float, batch: int = BATCH_BOXES) -> SplitOutcome:
    """Decide `prop` on `net` by branch and bound over input sub-boxes until `deadline` (time.monotonic()).

    ROBUST: every sub-box refuted for every term. COUNTEREXAMPLE: a point replayed in float64 (`term` indexes
    `prop.terms`). TIMEOUT: the deadline passed. UNKNOWN: some sub-box became too small to split undecided.
    """
    search = _Search(net, prop)
    root = search.bound(prop.lo[None], prop.hi[None], np.ones((1, len(prop.terms)), dtype=bool))
    queue = _Queue(prop.lo[None], prop.hi[None], root.open, root.score).take(root.open.any(axis=1))

    def outcome(verdict: Verdict, why: str = "") -> SplitOutcome:
        point, term = search.found if search.found else (None, None)
        return SplitOutcome(verdict, point, term, search.boxes, f"input split ({search.boxes} boxes{why})")

    while len(queue):
        if time.monotonic() > deadline:
            return outcome(Verdict.TIMEOUT, f", {len(queue)} open")
        queue.push(_round(search, queue.pop(batch)))
        if search.found:
            return outcome(Verdict.COUNTEREXAMPLE)
    if search.stuck:
        return outcome(Verdict.UNKNOWN, f", {search.stuck} too small to split")
    return outcome(Verdict.ROBUST)
