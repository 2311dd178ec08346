"""Progressive tightening of the pre-activation bounds of a ReluNet over an input box, under a time budget.

Cheap to expensive and layer by layer, as MIPVerify and α,β-CROWN do. Layer 0 is exact already. For k = 1 …
last hidden, layer k is first recomputed by CROWN from the tightened bounds of layers < k (intersected with what
is known); then its neurons still unstable (l < 0 < u) go through up to three stages:

1. α-CROWN: the lower relaxation slopes α ∈ [0, 1] of the earlier unstable neurons, one set per bounded row
   (min and max of each neuron), are optimised by projected gradient ascent (Adam), all rows in one numpy batch.
   Every α gives a valid bound; the best one seen is kept.
2. LP: the triangle relaxation of layers < k, with their bounds as column bounds, in one HiGHS model per layer,
   re-solved warm for the min and max of each neuron, most important first (gap × outgoing |weight|). The bound
   taken is not HiGHS's optimum but the Lagrangian bound recomputed here from its row duals: it is valid for
   *any* duals (every column is bounded), so solver tolerances cannot make it unsound; a 1e-9 relative margin
   absorbs float64 rounding.
3. MILP: the big-M encoding with binaries for the earlier unstable neurons (in layer k − 1 only those that the
   objective pushes up: the others are exact as LP), one model per layer, a short time limit per neuron, the
   neurons nearest to stable first (min(−l, u)/(u − l)) and their side nearer 0. By default HiGHS stops as soon
   as the sign is settled (cutoff just above 0). The bound is HiGHS's proven dual bound less `MILP_MARGIN`,
   never a primal value.

Bounds never loosen. α-CROWN runs in full; the time left is split equally between the remaining layers, and a
layer's part between LP and MILP by `TightenConfig`; time a stage does not use passes on.

Measured on MNIST MLPs at δ = PGD's minimal adversarial radius (first 3 correct test images each, 1 BLAS thread):
α-CROWN costs 0.05-0.9 s and is as tight as the LP everywhere (same unstable counts, widths within 1e-3, while
the LP takes 0.1-55 s, 3-150x more), so the LP is off by default. It removes 0-14 unstable ReLUs on 2-layer nets
and 2-14 on 784-100×4-10, where the errors compound (last-layer widths −8 to −22 %). The MILP then settles about
one neuron per 1-3 s at first, with diminishing returns: with a 10 s budget 4-8 fewer unstable ReLUs than
α-CROWN on 784-100-100-10 and 784-100×4-10, 1-5 on 784-256-256-10; on the VNN-COMP 256×2 net all were tried
(0-6 fewer) within 2.7 s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import Enum

import highspy
import numpy as np

from advgap.verify.bounds import LayerBounds, back_substitute, crown_bounds, crown_layer, relu_relaxation
from advgap.verify.milp import new_highs
from advgap.verify.network import ReluNet, dense_rows, row_entries

log = logging.getLogger(__name__)
ALPHA_ENTRIES = 2**22  # rows × ReLUs (up to the layer bounded) of one α-CROWN chunk: 32 MB per array
INF = highspy.kHighsInf
LP_MARGIN = 1e-9  # relative to the sum of |terms| of a recomputed Lagrangian bound: float64 rounding
MILP_MARGIN = 1e-5  # absolute plus relative, on HiGHS's MIP dual bound (its node LPs are solved to ~1e-7)

# The models are small and dense (784 inputs): presolve, symmetry detection and primal heuristics cost more than
# they save; switching them off made a MILP that settles a neuron's sign ~3x faster (784-256-256-10, 0.7-1.2 s).
MILP_OPTIONS = {
    "presolve": "off",
    "mip_detect_symmetry": False,
    "mip_heuristic_run_feasibility_jump": False,
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
}


class Stage(Enum):
    ALPHA = "alpha"
    LP = "lp"
    MILP = "milp"


@dataclass(frozen=True)
class TightenConfig:
    """How the budget is spent; the defaults follow the measurements in the module docstring.

    α-CROWN runs its steps in full on every layer (it is cheap: 0.02-0.6 s per layer on 784-256-256-10) unless
    the whole budget runs out. The time each layer then has left is split between LP and MILP by their shares;
    a share of 0 switches the stage off.
    """

    alpha_steps: int = 30  # projected-gradient steps per layer (0: no α-CROWN); 100 steps gained nothing more
    alpha_lr: float = 0.1  # Adam step size on the slopes
    lp_share: float = 0.0  # off: the LP matched α-CROWN's bounds to 1e-3 at 3-150x the time
    milp_share: float = 1.0
    milp_neuron_limit: float = 1.0  # seconds per MILP solve (one side of one neuron)
    milp_stop_at_sign: bool = True  # stop a MILP once the neuron's sign is settled; False: optimise the bound

    def solver_shares(self) -> dict[Stage, float]:
        """LP and MILP shares of a layer's time, normalised to sum to 1 over the enabled ones."""
        raw = {Stage.LP: self.lp_share, Stage.MILP: self.milp_share}
        total = sum(s for s in raw.values() if s > 0)
        return {stage: s / total for stage, s in raw.items() if s > 0}


@dataclass(frozen=True)
class StageRecord:
    """One stage on one layer: `solves` counts gradient steps (α) or HiGHS runs (LP, MILP)."""

    layer: int
    stage: Stage
    seconds: float
    solves: int
    unstable_before: int
    unstable_after: int


@dataclass(frozen=True)
class Tightening:
    """Tightened bounds and what each stage did."""

    bounds: LayerBounds
    records: tuple[StageRecord, ...]

    def solves(self, stage: Stage) -> int:
        return sum(r.solves for r in self.records if r.stage is stage)

    def seconds(self, stage: Stage) -> float:
        return sum(r.seconds for r in self.records if r.stage is stage)


def count_unstable(bounds: LayerBounds) -> int:
    """Number of hidden neurons with l < 0 < u."""
    return int(sum(np.count_nonzero((lo < 0) & (up > 0)) for lo, up in zip(bounds.lower, bounds.upper, strict=True)))


def tightened_bounds(
    net: ReluNet, lo: np.ndarray, hi: np.ndarray, budget: float, base: LayerBounds | None = None,
    config: TightenConfig | None = None,
) -> LayerBounds:
    """Pre-activation bounds of every hidden layer over the box [lo, hi], tightened for about `budget` seconds
    from `base` (CROWN's bounds if None); never looser than `base`. See `tighten`."""
    return tighten(net, lo, hi, budget, base, config).bounds


def tighten(
    net: ReluNet, lo: np.ndarray, hi: np.ndarray, budget: float, base: LayerBounds | None = None,
    config: TightenConfig | None = None,
) -> Tightening:
    """Tighten `base` (CROWN's bounds if None) layer by layer with α-CROWN, LP and MILP for about `budget` s."""
    deadline = time.monotonic() + budget
    config = config or TightenConfig()
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    base = crown_bounds(net, lo, hi, deadline) if base is None else base
    lowers, uppers = [b.copy() for b in base.lower], [b.copy() for b in base.upper]
    depth = len(net.hidden_sizes)
    records: list[StageRecord] = []
    for k in range(1, depth):
        _recompute_crown(net, lowers, uppers, k, lo, hi, deadline)
        if config.alpha_steps > 0:
            _maybe_run(Stage.ALPHA, net, lowers, uppers, k, lo, hi, deadline, config, records)
        end = time.monotonic()
        layer_time = max(deadline - end, 0.0) / (depth - k)  # the layer's equal part of the time left
        for stage, share in config.solver_shares().items():
            end += share * layer_time
            _maybe_run(stage, net, lowers, uppers, k, lo, hi, end, config, records)
    return Tightening(LayerBounds(tuple(lowers), tuple(uppers)), tuple(records))


def _unstable(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return (lower < 0) & (upper > 0)


def _recompute_crown(net: ReluNet, lowers: list, uppers: list, k: int, lo: np.ndarray, hi: np.ndarray,
                     deadline: float) -> None:
    """Intersect layer k's bounds with CROWN's from the current bounds of layers < k, as far as `deadline` allows."""
    partial = LayerBounds(tuple(lowers[:k]), tuple(uppers[:k]))
    lowers[k], uppers[k] = crown_layer(net, partial, k, lo, hi, lowers[k], uppers[k], deadline)


def _maybe_run(
    stage: Stage, net: ReluNet, lowers: list, uppers: list, k: int, lo: np.ndarray, hi: np.ndarray,
    deadline: float, config: TightenConfig, records: list[StageRecord],
) -> None:
    """Run one stage on layer k until `deadline` if it has unstable neurons and time, updating lowers[k],
    uppers[k] in place and appending its record."""
    start = time.monotonic()
    if start >= deadline or not np.any(_unstable(lowers[k], uppers[k])):
        return
    before = int(np.count_nonzero(_unstable(lowers[k], uppers[k])))
    if stage is Stage.ALPHA:
        solves = _alpha_stage(net, lowers, uppers, k, lo, hi, deadline, config)
    else:
        solves = _solver_stage(net, lowers, uppers, k, lo, hi, deadline, stage, config)
    after = int(np.count_nonzero(_unstable(lowers[k], uppers[k])))
    records.append(StageRecord(k, stage, time.monotonic() - start, solves, before, after))
    log.debug("tighten: %s", records[-1])


# ---------------------------------------------------------------------------------------------------- α-CROWN


def alpha_pass(
    net: ReluNet, lowers: list, uppers: list, k: int, coeffs: np.ndarray, alphas: list[np.ndarray],
    lo: np.ndarray, hi: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Lower bounds of the rows of `coeffs @ z_k` over the box with lower slopes `alphas[j]` (rows, n_j) for the
    unstable neurons of layers j < k, and the gradients of the bounds with respect to the slopes.

    The gradient is a forward pass of each row's relaxed net at its minimising corner: ∂bound/∂α_ji = m_ji ẑ_ji,
    m the bound's coefficient on h_j and ẑ the relaxed pre-activation there (Danskin; zero where m < 0).
    """
    ms, slopes, icpts = [np.empty(0)] * k, [np.empty(0)] * k, [np.empty(0)] * k

    def relax(j: int, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        low, up_slope, up_icpt = relu_relaxation(lowers[j], uppers[j])
        low = np.where(_unstable(lowers[j], uppers[j]), alphas[j], low)
        positive = m >= 0
        ms[j], slopes[j], icpts[j] = m, np.where(positive, low, up_slope), np.where(positive, 0.0, up_icpt)
        return slopes[j], icpts[j], 0.0

    a, const = back_substitute(net, coeffs @ net.weights[k], coeffs @ net.biases[k], k - 1, relax)
    corner = np.where(a >= 0, lo, hi)
    bound = const + (a * corner).sum(axis=1)
    grads = []
    z = corner @ net.weights_t[0] + net.biases[0]
    for j in range(k):
        free = _unstable(lowers[j], uppers[j]) & (ms[j] >= 0)
        grads.append(np.where(free, ms[j] * z, 0.0))
        if j + 1 < k:
            z = (slopes[j] * z + icpts[j]) @ net.weights_t[j + 1] + net.biases[j + 1]
    return bound, grads


def _alpha_stage(
    net: ReluNet, lowers: list, uppers: list, k: int, lo: np.ndarray, hi: np.ndarray, deadline: float,
    config: TightenConfig,
) -> int:
    """Optimise the slopes for min and max of every unstable neuron of layer k, ALPHA_ENTRIES / (2 × the ReLUs
    up to layer k) neurons at a time, until `deadline` (the neurons left keep their bounds)."""
    idx = np.flatnonzero(_unstable(lowers[k], uppers[k]))
    width = sum(len(lowers[j]) for j in range(k + 1))
    per_chunk = max(1, ALPHA_ENTRIES // (2 * width))
    steps = 0
    for start in range(0, len(idx), per_chunk):
        if time.monotonic() >= deadline:
            break
        steps += _alpha_chunk(net, lowers, uppers, k, idx[start : start + per_chunk], lo, hi, deadline, config)
    return steps


def _alpha_chunk(
    net: ReluNet, lowers: list, uppers: list, k: int, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    deadline: float, config: TightenConfig,
) -> int:
    """The slopes for min and max of the neurons `idx` of layer k (Adam, projected to [0, 1]); their bounds
    tightened in place. Returns the steps taken."""
    n = len(idx)
    coeffs = np.zeros((2 * n, len(lowers[k])))
    coeffs[np.arange(n), idx] = 1.0
    coeffs[n + np.arange(n), idx] = -1.0
    alphas = [np.broadcast_to(relu_relaxation(lowers[j], uppers[j])[0], (2 * n, len(lowers[j]))).copy()
              for j in range(k)]
    m1 = [np.zeros_like(a) for a in alphas]
    m2 = [np.zeros_like(a) for a in alphas]
    best = np.full(2 * n, -np.inf)
    steps = 0
    while steps < config.alpha_steps and time.monotonic() < deadline:
        bound, grads = alpha_pass(net, lowers, uppers, k, coeffs, alphas, lo, hi)
        best = np.maximum(best, bound)
        steps += 1
        for a, g, v1, v2 in zip(alphas, grads, m1, m2, strict=True):
            v1 *= 0.9
            v1 += 0.1 * g
            v2 *= 0.999
            v2 += 0.001 * g * g
            step = v1 / (1 - 0.9**steps) / (np.sqrt(v2 / (1 - 0.999**steps)) + 1e-12)
            np.clip(a + config.alpha_lr * step, 0.0, 1.0, out=a)
    lowers[k][idx] = np.maximum(lowers[k][idx], best[:n])
    uppers[k][idx] = np.minimum(uppers[k][idx], -best[n:])
    return steps


# ----------------------------------------------------------------------------------------------------- LP, MILP


class _ReluModel:
    """HiGHS model of hidden layers 0..k−1 over the box, for bounds on affine functions of their outputs.

    Columns: x, then per layer j the outputs h_j (bounds [max(l, 0), max(u, 0)]), the pre-activations z_j of its
    unstable neurons (bounds [l, u]) and, with `binaries`, their indicator d_j. An unstable neuron has rows
    z = W h + b and h >= z, then either the triangle h <= u (z − l) / (u − l) or big-M h <= u d,
    h <= z − l (1 − d). The matrix is kept (COO) to recompute Lagrangian bounds from HiGHS's duals.
    """

    def __init__(self, net: ReluNet, lowers: list, uppers: list, k: int, lo: np.ndarray, hi: np.ndarray,
                 binaries: bool, stop_at_sign: bool = False):
        self.binaries, self.stop_at_sign = binaries, binaries and stop_at_sign
        self.col_lo: list[np.ndarray] = []
        self.col_hi: list[np.ndarray] = []
        self.rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        self.n_cols = 0
        self.integer: list[np.ndarray] = []
        prev = self._cols(lo, hi)
        self.last_d = np.zeros(0, dtype=np.int32)
        for j in range(k):
            prev = self._layer(net.weights[j], net.biases[j], prev, lowers[j], uppers[j])
        self.last_h = prev
        self._load()

    def _cols(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        self.col_lo.append(np.asarray(lower, dtype=np.float64))
        self.col_hi.append(np.asarray(upper, dtype=np.float64))
        idx = np.arange(self.n_cols, self.n_cols + len(lower), dtype=np.int32)
        self.n_cols += len(lower)
        return idx

    def _row(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float) -> None:
        keep = vals != 0
        self.rows.append((cols[keep], vals[keep], lower, upper))

    def _layer(self, w: np.ndarray, b: np.ndarray, prev: np.ndarray, lower: np.ndarray, upper: np.ndarray
               ) -> np.ndarray:
        active, unstable = lower >= 0, _unstable(lower, upper)
        h = self._cols(np.where(active, lower, 0.0), np.maximum(upper, 0.0))
        for i in np.flatnonzero(active):
            cols, vals = row_entries(w, i)
            self._row(np.concatenate([[h[i]], prev[cols]]), np.concatenate([[1.0], -vals]), b[i], b[i])
        unst = np.flatnonzero(unstable)
        z = self._cols(lower[unst], upper[unst])
        d = self._cols(np.zeros(len(unst)), np.ones(len(unst))) if self.binaries else None
        for t, i in enumerate(unst):
            lo_i, up_i = lower[i], upper[i]
            cols, vals = row_entries(w, i)
            self._row(np.concatenate([[z[t]], prev[cols]]), np.concatenate([[1.0], -vals]), b[i], b[i])
            self._row(np.array([h[i], z[t]]), np.array([1.0, -1.0]), 0.0, INF)
            if d is None:
                s = up_i / (up_i - lo_i)
                self._row(np.array([h[i], z[t]]), np.array([1.0, -s]), -INF, -s * lo_i)
            else:
                self._row(np.array([h[i], d[t]]), np.array([1.0, -up_i]), -INF, 0.0)
                self._row(np.array([h[i], z[t], d[t]]), np.array([1.0, -1.0, -lo_i]), -INF, -lo_i)
        if d is not None:
            self.integer.append(d)
            self.last_d = np.full(len(lower), -1, dtype=np.int32)
            self.last_d[unst] = d
        return h

    def _load(self) -> None:
        self.h = new_highs()
        self.lb, self.ub = np.concatenate(self.col_lo), np.concatenate(self.col_hi)
        n = self.n_cols
        self.h.addCols(n, np.zeros(n), self.lb, self.ub, 0, np.zeros(n, np.int32), np.zeros(0, np.int32),
                       np.zeros(0))
        lengths = np.array([len(r[0]) for r in self.rows])
        self.row_lo = np.array([r[2] for r in self.rows])
        self.row_hi = np.array([r[3] for r in self.rows])
        self.a_row = np.repeat(np.arange(len(self.rows)), lengths)
        self.a_col = np.concatenate([r[0] for r in self.rows]).astype(np.int32)
        self.a_val = np.concatenate([r[1] for r in self.rows])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        self.h.addRows(len(self.rows), self.row_lo, self.row_hi, len(self.a_val), starts, self.a_col, self.a_val)
        self.n_earlier_binaries = sum(len(d) for d in self.integer[:-1])
        if self.integer:
            ints = np.concatenate(self.integer)
            self.h.changeColsIntegrality(len(ints), ints, np.full(len(ints), highspy.HighsVarType.kInteger,
                                                                  dtype=np.uint8))
        if self.binaries:
            for option, value in MILP_OPTIONS.items():
                self.h.setOptionValue(option, value)
        if self.stop_at_sign:
            self.h.setOptionValue("mip_max_improving_sols", 1)
        del self.rows

    def min_bound(self, cost: np.ndarray, const: float, time_limit: float) -> float:
        """A proven lower bound of cost·h_{k−1} + const over the model (−inf if none)."""
        self.h.changeColsCost(len(self.last_h), self.last_h, cost)
        self.h.setOptionValue("time_limit", max(time_limit, 0.01))
        cutoff = -const + 4 * MILP_MARGIN * (1 + abs(const)) if self.stop_at_sign else None
        is_mip = self.binaries and self._set_integrality(cost)
        if cutoff is not None:  # prune at just above 0, stop at the first point below: the sign is then settled
            self.h.setOptionValue("objective_bound", cutoff)
        if self.h.run() == highspy.HighsStatus.kError:  # no bound, not a failed verification
            log.warning("tighten: HiGHS failed (%s)", self.h.modelStatusToString(self.h.getModelStatus()))
            return -np.inf
        # without integer columns HiGHS solves an LP and leaves mip_dual_bound meaningless (0.0)
        return (self._mip_bound(cutoff) if is_mip else self._lp_bound(cost)) + const

    def _set_integrality(self, cost: np.ndarray) -> bool:
        """Binaries of layer k − 1 only where the cost pushes h up (elsewhere the LP relaxation is exact); returns
        whether the model has any integer column."""
        has = self.last_d >= 0
        needed = cost[has] < 0
        kinds = np.where(needed, highspy.HighsVarType.kInteger, highspy.HighsVarType.kContinuous)
        self.h.changeColsIntegrality(int(has.sum()), self.last_d[has], kinds.astype(np.uint8))
        return bool(needed.any()) or self.n_earlier_binaries > 0

    def _lp_bound(self, cost: np.ndarray) -> float:
        """Lagrangian lower bound from HiGHS's row duals y: min over the column box of (c − Aᵀy)·v plus y's
        row terms, with each y_r clipped to the sign its finite row side allows. Valid for any y."""
        solution = self.h.getSolution()
        if not solution.dual_valid:
            return -np.inf
        y = np.asarray(solution.row_dual, dtype=np.float64)
        finite_lo, finite_hi = np.isfinite(self.row_lo), np.isfinite(self.row_hi)
        y = np.where((y > 0) & finite_lo | (y < 0) & finite_hi, y, 0.0)
        if not np.all(np.isfinite(y)):
            return -np.inf
        c = np.zeros(self.n_cols)
        c[self.last_h] = cost
        reduced = c - np.bincount(self.a_col, weights=self.a_val * y[self.a_row], minlength=self.n_cols)
        row_terms = np.where(y > 0, y * np.where(finite_lo, self.row_lo, 0.0),
                             y * np.where(finite_hi, self.row_hi, 0.0))
        terms = np.concatenate([row_terms, np.minimum(reduced * self.lb, reduced * self.ub)])
        return float(terms.sum() - LP_MARGIN * np.abs(terms).sum())

    def _mip_bound(self, cutoff: float | None) -> float:
        """HiGHS's proven MIP dual bound less `MILP_MARGIN`.

        With a cutoff c HiGHS prunes every node whose bound is >= c, also against incumbents above c, so then only
        min(dual bound, c) is proven; "infeasible" means that no point lies below c (the box is not empty).
        """
        status, info = self.h.getModelStatus(), self.h.getInfo()
        dual = info.mip_dual_bound if np.isfinite(info.mip_dual_bound) else -np.inf
        if cutoff is None:
            bound = -np.inf if status == highspy.HighsModelStatus.kInfeasible else dual
        elif status in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kObjectiveBound):
            bound = cutoff if info.primal_solution_status != 2 else min(dual, cutoff)
        else:
            bound = min(dual, cutoff)
        return bound - MILP_MARGIN * (1 + abs(bound)) if np.isfinite(bound) else -np.inf


def _by_impact(net: ReluNet, lower: np.ndarray, upper: np.ndarray, k: int) -> np.ndarray:
    """Unstable neurons of layer k, most important first: relaxation gap −lu/(u−l) times outgoing |weight|."""
    idx = np.flatnonzero(_unstable(lower, upper))
    gap = -lower[idx] * upper[idx] / (upper[idx] - lower[idx])
    score = gap * np.asarray(abs(net.weights[k + 1][:, idx]).sum(axis=0)).reshape(-1)
    return idx[np.argsort(-score, kind="stable")]


def _by_closeness(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Unstable neurons of layer k, nearest to stable first: min(−l, u) / (u − l)."""
    idx = np.flatnonzero(_unstable(lower, upper))
    ratio = np.minimum(-lower[idx], upper[idx]) / (upper[idx] - lower[idx])
    return idx[np.argsort(ratio, kind="stable")]


def _solver_stage(
    net: ReluNet, lowers: list, uppers: list, k: int, lo: np.ndarray, hi: np.ndarray, deadline: float,
    stage: Stage, config: TightenConfig,
) -> int:
    """LP bounds (most important neurons first, both sides) or MILP bounds (neurons nearest to stable first, the
    side nearer 0 first; only that side when the MILP stops at the sign) for layer k, until `deadline`."""
    binaries = stage is Stage.MILP
    stop_at_sign = binaries and config.milp_stop_at_sign
    model = _ReluModel(net, lowers, uppers, k, lo, hi, binaries, stop_at_sign)
    order = _by_closeness(lowers[k], uppers[k]) if binaries else _by_impact(net, lowers[k], uppers[k], k)
    w, b = net.weights[k], net.biases[k]
    solves = 0
    for i in order:
        sides = (1.0, -1.0) if -lowers[k][i] <= uppers[k][i] else (-1.0, 1.0)
        for sign in sides[:1] if stop_at_sign else sides:
            left = deadline - time.monotonic()
            if left <= 0:
                return solves
            if not _unstable(lowers[k][i], uppers[k][i]):
                break
            limit = min(left, config.milp_neuron_limit) if binaries else left
            bound = model.min_bound(sign * dense_rows(w, i), sign * b[i], limit)
            solves += 1
            if sign > 0:
                lowers[k][i] = max(lowers[k][i], bound)
            else:
                uppers[k][i] = min(uppers[k][i], -bound)
    return solves
