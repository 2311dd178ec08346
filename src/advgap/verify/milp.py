"""Mixed-integer encoding of a ReluNet over an input box, solved with HiGHS.

Big-M encoding of relu (Tjeng et al.) with M taken from `LayerBounds`: stable neurons are linear (no binary), an
unstable neuron gets a binary only where the LP relaxation could be loose. For the last hidden layer and a
single-row objective, a neuron whose objective coefficient pushes its output down is exact as an LP (its output
only appears there and in `a >= max(0, z)`), so it needs no binary.

`NetworkMilp.min_violation` decides a property term on a box (used for multi-row terms); `max_affine_relu_lp`
settles the leaves of branch and bound exactly.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import highspy
import numpy as np

from advgap.errors import SolverError
from advgap.verify.bounds import LayerBounds
from advgap.verify.network import ReluNet, row_entries
from advgap.verify.spec import Term

log = logging.getLogger(__name__)
INF = highspy.kHighsInf


@contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null: HiGHS 1.16 prints its banner to stdout while `Highs()` is built,
    before any option can be set, which would corrupt the CLI's machine-readable output."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def new_highs(presolve: bool = True) -> highspy.Highs:
    """A HiGHS instance that writes nothing to the console (without presolve: leaf LPs, which it slows 2x)."""
    with _stdout_silenced():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if not presolve:
        h.setOptionValue("presolve", "off")
    return h


@dataclass
class _Rows:
    """Sparse rows lower <= sum(values * x[cols]) <= upper, collected before one `addRows` call."""

    lower: list[np.ndarray] = field(default_factory=list)
    upper: list[np.ndarray] = field(default_factory=list)
    lengths: list[np.ndarray] = field(default_factory=list)  # non-zeros per row
    cols: list[np.ndarray] = field(default_factory=list)
    vals: list[np.ndarray] = field(default_factory=list)

    def add(self, cols: np.ndarray, vals: np.ndarray, lower: float, upper: float) -> None:
        self.add_block(np.asarray(cols)[None], np.asarray(vals)[None], np.array([lower]), np.array([upper]))

    def add_block(self, cols: np.ndarray, vals: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Rows i with lower[i] <= sum(vals[i] * x[cols[i]]) <= upper[i] (cols, vals of shape (rows, k))."""
        keep = vals != 0
        self.cols.append(np.asarray(cols, dtype=np.int32)[keep])  # row by row
        self.vals.append(np.asarray(vals, dtype=np.float64)[keep])
        self.lengths.append(keep.sum(axis=1))
        self.lower.append(np.asarray(lower, dtype=np.float64))
        self.upper.append(np.asarray(upper, dtype=np.float64))

    def flush(self, h: highspy.Highs) -> None:
        if not self.lower:
            return
        lengths = np.concatenate(self.lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        h.addRows(len(lengths), np.concatenate(self.lower), np.concatenate(self.upper), int(lengths.sum()), starts,
                  np.concatenate(self.cols), np.concatenate(self.vals))


@dataclass(frozen=True)
class AffineReluProblem:
    """max c·relu(A x + a) + c0 over x in [lo, hi] with G x + g >= 0: a leaf with earlier layers fixed."""

    A: np.ndarray
    a: np.ndarray
    c: np.ndarray
    c0: float
    lo: np.ndarray
    hi: np.ndarray
    G: np.ndarray
    g: np.ndarray


@dataclass(frozen=True)
class MilpOutcome:
    """What HiGHS established: `value` of the best point found (inf if none), `bound` a proven lower bound."""

    value: float
    bound: float
    point: np.ndarray | None
    timed_out: bool


class NetworkMilp:
    """A HiGHS model of `net` on the box [lo, hi] with output variables expressed through the last hidden layer."""

    def __init__(
        self,
        net: ReluNet,
        bounds: LayerBounds,
        lo: np.ndarray,
        hi: np.ndarray,
        objective_rows: np.ndarray,
        inactive_splits: tuple[np.ndarray, ...] | None = None,
    ):
        """`inactive_splits[k]` marks neurons of layer k forced inactive by a split: z <= 0 is then a row."""
        self.net = net
        self.h = new_highs()
        self.n_cols = 0
        self.x = self._add_cols(lo, hi)
        self.rows = _Rows()
        prev = self.x
        last = len(net.weights) - 2
        out_coef = objective_rows @ net.weights[-1]
        for k in range(len(net.weights) - 1):
            forced_off = None if inactive_splits is None else inactive_splits[k]
            prev = self._relu_layer(
                k, prev, bounds.lower[k], bounds.upper[k], out_coef if k == last else None, forced_off
            )
        self.last_hidden = prev

    def _add_cols(self, lower: np.ndarray, upper: np.ndarray, integer: bool = False) -> np.ndarray:
        n = len(lower)
        self.h.addCols(n, np.zeros(n), np.asarray(lower, float), np.asarray(upper, float), 0,
                       np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0))
        idx = np.arange(self.n_cols, self.n_cols + n, dtype=np.int32)
        if integer and n:
            self.h.changeColsIntegrality(n, idx, np.full(n, highspy.HighsVarType.kInteger, dtype=np.uint8))
        self.n_cols += n
        return idx

    def _relu_layer(
        self,
        k: int,
        prev: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        out_coef: np.ndarray | None,
        forced_off: np.ndarray | None,
    ) -> np.ndarray:
        """Add post-activation columns of hidden layer k with their relu constraints; return their indices.

        An active neuron's `a = z` with the column bound a >= 0 also enforces z >= 0, so active splits need no
        extra row; inactive splits (`forced_off`) get the row z <= 0.
        """
        w, b = self.net.weights[k], self.net.biases[k]
        post = self._add_cols(np.zeros(len(lower)), np.maximum(upper, 0.0))
        for j in range(len(lower)):
            a, (nz, w_j) = post[j], row_entries(w, j)  # the row's non-zeros: the rows drop zeros anyway
            cols = np.concatenate([[a], prev[nz]])
            if upper[j] <= 0:  # the column bounds pin a to 0
                if forced_off is not None and forced_off[j]:
                    self.rows.add(prev[nz], w_j, -INF, -b[j])
                continue
            if lower[j] >= 0:  # a = w x + b
                self.rows.add(cols, np.concatenate([[1.0], -w_j]), b[j], b[j])
                continue
            self.rows.add(cols, np.concatenate([[1.0], -w_j]), b[j], INF)  # a >= z
            needs_binary = out_coef is None or np.any(out_coef[:, j] < 0)
            if not needs_binary:
                continue
            s = self._add_cols(np.zeros(1), np.ones(1), integer=True)[0]
            self.rows.add(np.array([a, s]), np.array([1.0, -upper[j]]), -INF, 0.0)  # a <= u s
            # a <= z - l (1 - s)  <=>  a - w x - l s <= b - l
            self.rows.add(np.concatenate([[a, s], prev[nz]]), np.concatenate([[1.0, -lower[j]], -w_j]), -INF,
                          b[j] - lower[j])
        return post

    def _output_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients on the last hidden layer and constants of `rows @ y`."""
        return rows @ self.net.weights[-1], rows @ self.net.biases[-1]

    def _solve(self, time_limit: float, objective_bound: float | None) -> MilpOutcome:
        self.rows.flush(self.h)
        self.rows = _Rows()
        self.h.setOptionValue("time_limit", max(time_limit, 0.01))
        if objective_bound is not None:
            self.h.setOptionValue("objective_bound", objective_bound)
        if self.h.run() == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS failed: {self.h.modelStatusToString(self.h.getModelStatus())}")
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        timed_out = status == highspy.HighsModelStatus.kTimeLimit
        if status == highspy.HighsModelStatus.kInfeasible:
            return MilpOutcome(INF, INF, None, False)
        has_point = info.primal_solution_status == 2
        value = info.objective_function_value if has_point else INF
        bound = info.mip_dual_bound if np.isfinite(info.mip_dual_bound) else -INF
        if status == highspy.HighsModelStatus.kOptimal and not np.isfinite(info.mip_dual_bound):
            bound = value
        elif status == highspy.HighsModelStatus.kObjectiveBound and not has_point and objective_bound is not None:
            bound = max(bound, objective_bound)  # every node was pruned at the objective bound
        point = np.array(self.h.getSolution().col_value)[self.x] if has_point else None
        return MilpOutcome(value, bound, point, timed_out)

    def min_violation(self, term: Term, time_limit: float, stop_below: float = 0.0) -> MilpOutcome:
        """Minimise v = max_r (A_r y - b_r) over the box: v > 0 everywhere means the term cannot hold.

        HiGHS prunes every node whose bound is >= `stop_below` and stops at the first point below it.
        """
        v = self._add_cols(np.array([-INF]), np.array([INF]))[0]
        coef, const = self._output_rows(term.A)
        for r in range(term.A.shape[0]):
            # v >= coef_r h + const_r - b_r
            self.rows.add(np.concatenate([[v], self.last_hidden]), np.concatenate([[1.0], -coef[r]]),
                          const[r] - term.b[r], INF)
        self.h.changeColCost(int(v), 1.0)
        self.h.setOptionValue("mip_max_improving_sols", 1)
        return self._solve(time_limit, stop_below)


def _leaf_rows(p: AffineReluProblem, on: np.ndarray, off: np.ndarray, concave: np.ndarray,
               hs: np.ndarray) -> _Rows:
    """A leaf's region over x = columns 0..n-1: split constraints z_j >= 0 (`on`) / z_j <= 0 (`off`), the earlier
    layers' rows G x + g >= 0, and h_j >= z_j for each concave neuron j, its h in column hs[k]."""
    rows = _Rows()
    n = p.A.shape[1]
    x = np.arange(n, dtype=np.int32)

    def block(m: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x, (len(m), n))

    rows.add_block(block(p.A[on]), p.A[on], -p.a[on], np.full(on.sum(), INF))
    rows.add_block(block(p.A[off]), p.A[off], np.full(off.sum(), -INF), -p.a[off])
    rows.add_block(block(p.G), p.G, -p.g, np.full(len(p.g), INF))
    m = len(concave)
    rows.add_block(np.concatenate([hs[:m, None], block(p.A[concave])], axis=1),
                   np.concatenate([np.ones((m, 1)), -p.A[concave]], axis=1), p.a[concave], np.full(m, INF))
    return rows


def max_affine_relu_lp(
    problem: AffineReluProblem, active: np.ndarray, on: np.ndarray, off: np.ndarray, concave: np.ndarray
) -> tuple[float, np.ndarray | None]:
    """Exact maximum of c·relu(A x + a) + c0 on a branch-and-bound leaf, by one LP.

    `active` neurons contribute c_j z_j, `on`/`off` ones carry the split constraint z_j >= 0 / z_j <= 0, and the
    `concave` ones (c_j <= 0, unstable) get h_j >= max(0, z_j), exact because their coefficient pushes h_j down.
    Returns (maximum, maximiser x), or (-inf, None) when the leaf's region is empty.
    """
    p = problem
    n, m = p.A.shape[1], len(concave)
    h = new_highs(presolve=False)
    cost = np.concatenate([-(p.c[active] @ p.A[active]), -p.c[concave]])
    lower = np.concatenate([p.lo, np.zeros(m)])
    upper = np.concatenate([p.hi, np.full(m, INF)])
    h.addCols(n + m, cost, lower, upper, 0, np.zeros(n + m, np.int32), np.zeros(0, np.int32), np.zeros(0))
    rows = _leaf_rows(p, on, off, concave, np.arange(n, n + m, dtype=np.int32))
    rows.flush(h)
    if not np.isfinite(_solve_leaf(h, "branch-and-bound leaf LP")):
        return -np.inf, None
    offset = p.c0 + float(p.c[active] @ p.a[active])
    point = np.array(h.getSolution().col_value)[:n]
    return offset - h.getInfo().objective_function_value, point


def min_radius_affine_relu_lp(
    problem: AffineReluProblem, active: np.ndarray, on: np.ndarray, off: np.ndarray, concave: np.ndarray,
    x0: np.ndarray, slack: float = 1e-6, witness_below: float = np.inf,
) -> tuple[float, np.ndarray | None]:
    """Exact minimal ‖x − x0‖∞ on a branch-and-bound leaf with c·relu(A x + a) + c0 >= 0, by one LP.

    The leaf's neurons as in `max_affine_relu_lp`; a concave neuron's h_j >= max(0, z_j) is exact here too, since
    its coefficient c_j <= 0 makes the smallest h_j the easiest to satisfy. Returns (radius, x), or (inf, None)
    when no point of the leaf reaches the condition. When the radius is below `witness_below`, x is the optimum
    of the same LP re-solved with `slack` on the right-hand side (c·relu(·) + c0 >= slack), so that it survives a
    float64 replay (else None: no witness wanted); the radius is the exact one.
    """
    p = problem
    n, m = p.A.shape[1], len(concave)
    h = new_highs(presolve=False)
    cost = np.zeros(n + 1 + m)
    cost[n] = 1.0
    lower = np.concatenate([p.lo, [0.0], np.zeros(m)])
    upper = np.concatenate([p.hi, [INF], np.full(m, INF)])
    h.addCols(n + 1 + m, cost, lower, upper, 0, np.zeros(n + 1 + m, np.int32), np.zeros(0, np.int32), np.zeros(0))
    hs = np.arange(n + 1, n + 1 + m, dtype=np.int32)
    rows = _leaf_rows(p, on, off, concave, hs)
    x = np.arange(n, dtype=np.int32)
    t = np.int32(n)
    pairs = np.stack([x, np.full(n, t)], axis=1)  # x0_i - t <= x_i <= x0_i + t
    rows.add_block(pairs, np.tile([1.0, -1.0], (n, 1)), np.full(n, -INF), x0)
    rows.add_block(pairs, np.ones((n, 2)), x0, np.full(n, INF))
    # c_active·(A x + a) + c_concave·h + c0 >= 0
    need = -p.c0 - float(p.c[active] @ p.a[active])
    rows.add(np.concatenate([x, hs]), np.concatenate([p.c[active] @ p.A[active], p.c[concave]]), need, INF)
    rows.flush(h)
    radius = _solve_leaf(h)
    if not np.isfinite(radius):
        return np.inf, None
    if radius >= witness_below:
        return radius, None
    h.changeRowBounds(h.getNumRow() - 1, need + slack, INF)
    _solve_leaf(h)
    return radius, np.array(h.getSolution().col_value)[:n]


def _solve_leaf(h: highspy.Highs, what: str = "minimal-radius leaf LP") -> float:
    """Solve a leaf LP (a minimisation): its optimal value, or inf when infeasible. Without presolve HiGHS now and
    then ends with status Unknown; such an LP is solved again from scratch with presolve."""
    done = (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kInfeasible)
    for attempt in range(2):
        if attempt:
            h.setOptionValue("presolve", "on")
            h.clearSolver()
        if h.run() == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS failed on a {what}")
        status = h.getModelStatus()
        if status in done:
            break
    if status == highspy.HighsModelStatus.kInfeasible:
        return np.inf
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"HiGHS {what} ended with {h.modelStatusToString(status)}")
    return float(h.getInfo().objective_function_value)
