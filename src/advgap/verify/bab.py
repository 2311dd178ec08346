"""Branch and bound over ReLU splits for one single-row property term, any depth.

Question: can `a·y <= b` hold somewhere in the box? With g = b − a·y this asks whether max_x g(x) >= 0.

Two levels. The *outer* search splits unstable neurons of every hidden layer but the last, bounding each node with
CROWN on bounds clamped by its splits. Once every such neuron is fixed (split or stable on the node), the last
hidden layer's pre-activations are an affine map z = A x + a of the input, valid on the node's region
{x in box : G x + g >= 0} (the split constraints), and the rest is the *inner* problem

    max c·relu(A x + a) + c0  over  x in [lo, hi],  G x + g >= 0,

solved by `LastLayerBab`. For a one-hidden-layer net the outer search is a single leaf.

Inner search: only unstable neurons with c_j > 0 (they help the adversary) are split: for c_j <= 0 the term
c_j·relu(z_j) is concave and its LP relaxation is exact. A node's bound is the Lagrangian dual of its LP relaxation,

    g(x) <= Σ_j λ_j z_j(x) + Σ_r μ_r (G_r x + g_r) + κ,  maximised over the box in closed form,

with λ_j = c_j (stable active), c_j + β_j (split active), −β_j (split inactive), c_j s_j (free helpful: upper
triangle slope s_j = u_j/(u_j − l_j), κ gains −c_j s_j l_j), c_j α_j (unstable with c_j <= 0); β, μ >= 0, α in
[0, 1]. *Every* choice of (α, β, μ) gives a valid bound, so optimising them by projected gradient steps can only
tighten the bound, never make it unsound. A node whose bound is below −SOUNDNESS_MARGIN is pruned; its maximising
box corner is tried as a counterexample; a leaf that is neither is settled exactly by an LP in HiGHS.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from advgap.verify.bounds import backward_lower, box_min, crown_bounds
from advgap.verify.milp import max_affine_relu_lp
from advgap.verify.network import ReluNet
from advgap.verify.spec import Term

SOUNDNESS_MARGIN = 1e-7  # a node is pruned only if its bound on g is below -SOUNDNESS_MARGIN


class BabStatus(Enum):
    ROBUST = "robust"
    FOUND = "found"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"  # an LP optimum claimed a violation that does not replay in float64


@dataclass(frozen=True)
class BabOutcome:
    status: BabStatus
    point: np.ndarray | None
    nodes: int
    lps: int


@dataclass(frozen=True)
class AffineReluProblem:
    """max c·relu(A x + a) + c0 over x in [lo, hi] with G x + g >= 0 (G may have no rows)."""

    A: np.ndarray
    a: np.ndarray
    c: np.ndarray
    c0: float
    lo: np.ndarray
    hi: np.ndarray
    G: np.ndarray
    g: np.ndarray


@dataclass
class _Batch:
    """A batch of inner nodes: phases over the helpful neurons and their warm-started dual variables."""

    phase: np.ndarray  # (B, n_helpful) int8
    alpha: np.ndarray  # (B, n_concave)
    beta: np.ndarray  # (B, n_helpful)
    mu: np.ndarray  # (B, n_rows)


class LastLayerBab:
    """Inner branch and bound on an `AffineReluProblem`; `is_counterexample` replays candidate points."""

    def __init__(self, problem: AffineReluProblem, is_counterexample: Callable[[np.ndarray], bool]):
        p = self.p = problem
        self.is_counterexample = is_counterexample
        self.At = np.ascontiguousarray(p.A.T)
        self.Gt = np.ascontiguousarray(p.G.T)
        self.l = box_min(p.A, p.lo, p.hi) + p.a
        self.u = -box_min(-p.A, p.lo, p.hi) + p.a
        unstable = (self.l < 0) & (self.u > 0)
        self.helpful = np.flatnonzero(unstable & (p.c > 0))
        self.concave = np.flatnonzero(unstable & (p.c <= 0))
        self.active = np.flatnonzero(self.l >= 0)
        lh, uh = self.l[self.helpful], self.u[self.helpful]
        self.slope = uh / (uh - lh)
        self.score = p.c[self.helpful] * self.slope * (-lh)  # the triangle's slack at the neuron (BaBSR-like)

    def _bound(self, batch: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bound per node, the box corner attaining it and the pre-activations there."""
        p, n = self.p, len(batch.phase)
        lam = np.zeros((n, len(p.c)))
        lam[:, self.active] = p.c[self.active]
        ch = p.c[self.helpful]
        free = batch.phase == 0
        lam[:, self.helpful] = np.where(free, ch * self.slope, np.where(batch.phase > 0, ch + batch.beta, -batch.beta))
        lam[:, self.concave] = p.c[self.concave] * batch.alpha
        kappa = p.c0 - np.where(free, ch * self.slope * self.l[self.helpful], 0.0).sum(axis=1)
        kappa = kappa + lam @ p.a + batch.mu @ p.g
        slope_x = lam @ p.A + batch.mu @ p.G
        corner = np.where(slope_x > 0, p.hi, p.lo)
        bound = kappa + np.einsum("bi,bi->b", slope_x, corner)
        return bound, corner, corner @ self.At + p.a

    def _optimise(self, batch: _Batch, iters: int) -> tuple[np.ndarray, np.ndarray]:
        """Projected gradient on (α, β, μ); returns the best bound per node and its maximiser."""
        p = self.p
        best, corner, z = self._bound(batch)
        best_corner = corner
        scale = max(float(np.abs(p.c).max()), 1e-12)
        for it in range(iters):
            if np.all(best < -SOUNDNESS_MARGIN):
                break
            step = 0.5 / (1 + it) ** 0.5
            norm = np.abs(z).max(axis=1, keepdims=True) + 1e-12
            zh = z[:, self.helpful]
            grad_beta = np.where(batch.phase > 0, zh, np.where(batch.phase < 0, -zh, 0.0))
            batch.beta = np.maximum(batch.beta - step * scale * grad_beta / norm, 0.0)
            grad_alpha = p.c[self.concave] * z[:, self.concave]
            batch.alpha = np.clip(batch.alpha - step * grad_alpha / (norm * scale), 0.0, 1.0)
            if p.g.size:
                rows = corner @ self.Gt + p.g
                rows_norm = np.abs(rows).max(axis=1, keepdims=True) + 1e-12
                batch.mu = np.maximum(batch.mu - step * scale * rows / rows_norm, 0.0)
            bound, corner, z = self._bound(batch)
            better = bound < best
            best = np.where(better, bound, best)
            best_corner = np.where(better[:, None], corner, best_corner)
        return best, best_corner

    def _leaf_lp(self, phase: np.ndarray) -> np.ndarray | None:
        """Exact LP of a leaf: its maximiser if the maximum is >= 0 (a counterexample candidate), else None."""
        n = len(self.p.c)
        on, off = np.zeros(n, bool), np.zeros(n, bool)
        on[self.helpful[phase > 0]] = True
        off[self.helpful[phase < 0]] = True
        active = on.copy()
        active[self.active] = True
        value, point = max_affine_relu_lp(self.p, active, on, off, self.concave)
        return point if value >= 0 else None

    def run(self, deadline: float, batch_size: int = 64, iters: int = 40) -> BabOutcome:
        """Decide: ROBUST (proven max < 0), FOUND (a replayed counterexample), TIMEOUT or UNKNOWN."""
        n_h, n_r = len(self.helpful), len(self.p.g)
        default_alpha = np.where(self.u[self.concave] > -self.l[self.concave], 1.0, 0.0)
        queue = [(np.zeros(n_h, np.int8), default_alpha, np.zeros(n_h), np.zeros(n_r))]
        nodes = lps = 0
        while queue:
            if time.monotonic() > deadline:
                return BabOutcome(BabStatus.TIMEOUT, None, nodes, lps)
            take, queue = queue[-batch_size:], queue[:-batch_size]
            batch = _Batch(*(np.stack([t[k] for t in take]) for k in range(4)))
            nodes += len(take)
            best, corners = self._optimise(batch, iters)
            for i in np.flatnonzero(best >= -SOUNDNESS_MARGIN):
                if self.is_counterexample(corners[i]):
                    return BabOutcome(BabStatus.FOUND, corners[i], nodes, lps)
                phase = batch.phase[i]
                free = np.flatnonzero(phase == 0)
                if free.size == 0:
                    lps += 1
                    point = self._leaf_lp(phase)
                    if point is None:
                        continue
                    if self.is_counterexample(point):
                        return BabOutcome(BabStatus.FOUND, point, nodes, lps)
                    return BabOutcome(BabStatus.UNKNOWN, None, nodes, lps)
                j = free[np.argmax(self.score[free])]
                for sign in (-1, 1):
                    child = phase.copy()
                    child[j] = sign
                    queue.append((child, batch.alpha[i].copy(), batch.beta[i].copy(), batch.mu[i].copy()))
        return BabOutcome(BabStatus.ROBUST, None, nodes, lps)


class TermBab:
    """Outer branch and bound for one single-row term of any ReluNet on the box [lo, hi]."""

    def __init__(self, net: ReluNet, term: Term, lo: np.ndarray, hi: np.ndarray):
        if term.A.shape[0] != 1:
            raise ValueError("TermBab needs a single-row term")
        self.net, self.term, self.lo, self.hi = net, term, lo, hi
        self.last = len(net.weights) - 1  # index of the output layer
        self.c = -(term.A @ net.weights[-1])[0]
        self.c0 = float(term.b[0] - term.A[0] @ net.biases[-1])

    def is_counterexample(self, x: np.ndarray) -> bool:
        return bool(np.all(x >= self.lo) and np.all(x <= self.hi) and self.term.holds(self.net.forward(x)))

    def _leaf_problem(self, phases: list[np.ndarray], lower: tuple[np.ndarray, ...]) -> AffineReluProblem:
        """The inner problem of an outer leaf: all hidden layers but the last fixed by splits or bounds."""
        n = self.net.n_inputs
        m, v = np.eye(n), np.zeros(n)
        rows, consts = [np.zeros((0, n))], [np.zeros(0)]
        for k in range(self.last - 1):
            m, v = self.net.weights[k] @ m, self.net.weights[k] @ v + self.net.biases[k]
            split = phases[k] != 0
            rows.append(phases[k][split, None] * m[split])
            consts.append(phases[k][split] * v[split])
            on = ((phases[k] > 0) | (lower[k] >= 0)) & (phases[k] >= 0)
            m, v = m * on[:, None], v * on
        w, b = self.net.weights[self.last - 1], self.net.biases[self.last - 1]
        return AffineReluProblem(w @ m, w @ v + b, self.c, self.c0, self.lo, self.hi,
                                 np.concatenate(rows), np.concatenate(consts))

    def run(self, deadline: float) -> BabOutcome:
        depth = self.last - 1  # hidden layers whose neurons the outer search splits
        sizes = self.net.hidden_sizes
        stack = [[np.zeros(s, np.int8) for s in sizes[:depth]]]
        nodes = lps = 0
        while stack:
            if time.monotonic() > deadline:
                return BabOutcome(BabStatus.TIMEOUT, None, nodes, lps)
            phases = stack.pop()
            nodes += 1
            full = [*phases, np.zeros(sizes[-1], np.int8)]
            bounds = crown_bounds(self.net, self.lo, self.hi, full)
            if any(np.any(lo > up) for lo, up in zip(bounds.lower, bounds.upper, strict=True)):
                continue  # the splits contradict each other: empty region
            if depth:
                margin = backward_lower(self.net, bounds, self.term.A, self.last, self.lo, self.hi) - self.term.b
                if margin.max() > SOUNDNESS_MARGIN:
                    continue
            branch = self._pick_split(phases, bounds.lower, bounds.upper)
            if branch is not None:
                k, j = branch
                for sign in (-1, 1):
                    child = [p.copy() for p in phases]
                    child[k][j] = sign
                    stack.append(child)
                continue
            inner = LastLayerBab(self._leaf_problem(phases, bounds.lower), self.is_counterexample)
            outcome = inner.run(deadline)
            nodes, lps = nodes + outcome.nodes, lps + outcome.lps
            if outcome.status is not BabStatus.ROBUST:
                return BabOutcome(outcome.status, outcome.point, nodes, lps)
        return BabOutcome(BabStatus.ROBUST, None, nodes, lps)

    @staticmethod
    def _pick_split(
        phases: list[np.ndarray], lower: tuple[np.ndarray, ...], upper: tuple[np.ndarray, ...]
    ) -> tuple[int, int] | None:
        """The free unstable neuron of the earliest outer layer with the widest triangle, or None."""
        for k, phase in enumerate(phases):
            free = (phase == 0) & (lower[k] < 0) & (upper[k] > 0)
            if free.any():
                area = np.where(free, np.minimum(-lower[k], upper[k]), -np.inf)
                return k, int(np.argmax(area))
        return None
