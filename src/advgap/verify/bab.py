"""Branch and bound over ReLU splits for one-hidden-layer nets, with optimised dual bounds batched in numpy.

Question: can the single-row term `a·y <= b` hold somewhere in the box? Equivalently, is
max_x g(x) >= 0 with g(x) = c·relu(W x + b1) + c0, c = -(a W2), c0 = b - a·b2?

Only unstable neurons with c_j > 0 (they help the adversary) are split: for c_j <= 0 the term c_j·relu(z_j) is
concave and its LP relaxation is exact. A node fixes some helpful neurons active (z_j >= 0) or inactive
(z_j <= 0). Its bound is the Lagrangian dual of the node's LP relaxation,

    g(x) <= Σ_j λ_j z_j(x) + κ  for every x of the node, maximised over the box in closed form,

with λ_j = c_j (stable active), c_j + β_j (split active), -β_j (split inactive), c_j s_j (free helpful, upper
triangle slope s_j = u_j/(u_j-l_j), κ gains -c_j s_j l_j), c_j α_j (unstable with c_j <= 0), β >= 0, α in [0,1].
*Every* (α, β) gives a valid bound, so optimising them by projected gradient steps can only tighten the bound,
never make it unsound. A node whose bound is below -`margin` is pruned; its box-corner maximiser is tried as a
counterexample; a leaf (all helpful neurons split) that is neither is settled exactly by an LP in HiGHS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import numpy as np

from advgap.verify.bounds import LayerBounds, box_min
from advgap.verify.milp import NetworkMilp
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


@dataclass
class _Batch:
    """A batch of nodes: phases over the helpful neurons and their warm-started dual variables."""

    phase: np.ndarray  # (B, n_helpful) int8
    alpha: np.ndarray  # (B, n_concave)
    beta: np.ndarray  # (B, n_helpful)


class OneHiddenBab:
    """Branch and bound for one term of a one-hidden-layer net on a fixed box."""

    def __init__(self, net: ReluNet, term: Term, lo: np.ndarray, hi: np.ndarray):
        if len(net.weights) != 2 or term.A.shape[0] != 1:
            raise ValueError("OneHiddenBab needs a one-hidden-layer net and a single-row term")
        self.net, self.term, self.lo, self.hi = net, term, lo, hi
        w1, b1 = net.weights[0], net.biases[0]
        self.w1, self.w1t, self.b1 = w1, net.weights_t[0], b1
        self.l = box_min(w1, lo, hi) + b1
        self.u = -box_min(-w1, lo, hi) + b1
        self.c = -(term.A @ net.weights[1])[0]
        self.c0 = float(term.b[0] - term.A[0] @ net.biases[1])
        unstable = (self.l < 0) & (self.u > 0)
        self.helpful = np.flatnonzero(unstable & (self.c > 0))
        self.concave = np.flatnonzero(unstable & (self.c <= 0))
        self.active = np.flatnonzero(self.l >= 0)
        lh, uh = self.l[self.helpful], self.u[self.helpful]
        self.slope = uh / (uh - lh)
        # Split score: the relaxation's slack at the neuron, c_j s_j (-l_j) (BaBSR-like).
        self.score = self.c[self.helpful] * self.slope * (-lh)

    def _coefficients(self, batch: _Batch) -> tuple[np.ndarray, np.ndarray]:
        """λ (B, n_hidden) and κ (B,) of each node's linear bound."""
        n = len(batch.phase)
        lam = np.zeros((n, len(self.c)))
        lam[:, self.active] = self.c[self.active]
        ch = self.c[self.helpful]
        free = batch.phase == 0
        lam[:, self.helpful] = np.where(
            free, ch * self.slope, np.where(batch.phase > 0, ch + batch.beta, -batch.beta)
        )
        kappa = np.full(n, self.c0) - np.where(free, ch * self.slope * self.l[self.helpful], 0.0).sum(axis=1)
        lam[:, self.concave] = self.c[self.concave] * batch.alpha
        return lam, kappa + lam @ self.b1

    def _bound(self, batch: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bound per node, the box corner attaining it and the pre-activations there."""
        lam, kappa = self._coefficients(batch)
        slope_x = lam @ self.w1
        corner = np.where(slope_x > 0, self.hi, self.lo)
        bound = kappa + np.einsum("bi,bi->b", slope_x, corner)
        return bound, corner, corner @ self.w1t + self.b1

    def _optimise(self, batch: _Batch, iters: int) -> tuple[np.ndarray, np.ndarray]:
        """Projected gradient on (α, β); returns the best bound per node and its maximiser."""
        best, corner, z = self._bound(batch)
        best_corner = corner
        beta_scale = max(float(np.abs(self.c).max()), 1e-12)
        for it in range(iters):
            if np.all(best < -SOUNDNESS_MARGIN):
                break
            step = 0.5 / (1 + it) ** 0.5
            zh = z[:, self.helpful]
            grad_beta = np.where(batch.phase > 0, zh, np.where(batch.phase < 0, -zh, 0.0))
            grad_alpha = self.c[self.concave] * z[:, self.concave]
            norm = np.abs(z).max(axis=1, keepdims=True) + 1e-12
            batch.beta = np.maximum(batch.beta - step * beta_scale * grad_beta / norm, 0.0)
            batch.alpha = np.clip(batch.alpha - step * grad_alpha / (norm * beta_scale), 0.0, 1.0)
            bound, corner, z = self._bound(batch)
            better = bound < best
            best = np.where(better, bound, best)
            best_corner = np.where(better[:, None], corner, best_corner)
        return best, best_corner

    def _violates(self, x: np.ndarray) -> bool:
        return self.term.holds(self.net.forward(x))

    def _leaf_lp(self, phase: np.ndarray) -> np.ndarray | None:
        """Exact LP of a leaf: its maximiser if g >= 0 there (a counterexample candidate), else None."""
        lower, upper = self.l.copy(), self.u.copy()
        lower[self.helpful] = np.where(phase > 0, np.maximum(lower[self.helpful], 0.0), lower[self.helpful])
        upper[self.helpful] = np.where(phase < 0, np.minimum(upper[self.helpful], 0.0), upper[self.helpful])
        off = np.zeros(len(self.c), dtype=bool)
        off[self.helpful] = phase < 0
        milp = NetworkMilp(self.net, LayerBounds((lower,), (upper,)), self.lo, self.hi, self.term.A, (off,))
        outcome = milp.min_violation(self.term, time_limit=60.0)
        return outcome.point if outcome.value <= 0 else None

    def run(self, deadline: float, batch_size: int = 64, iters: int = 40) -> BabOutcome:
        """Decide the term: ROBUST (proven), FOUND (a point satisfying the term, checked in float64) or TIMEOUT."""
        n_h = len(self.helpful)
        queue = [(np.zeros(n_h, np.int8), np.where(self.u[self.concave] > -self.l[self.concave], 1.0, 0.0),
                  np.zeros(n_h))]
        nodes = lps = 0
        while queue:
            if time.monotonic() > deadline:
                return BabOutcome(BabStatus.TIMEOUT, None, nodes, lps)
            take, queue = queue[-batch_size:], queue[:-batch_size]
            batch = _Batch(np.stack([t[0] for t in take]), np.stack([t[1] for t in take]),
                           np.stack([t[2] for t in take]))
            nodes += len(take)
            best, corners = self._optimise(batch, iters)
            for i in np.flatnonzero(best >= -SOUNDNESS_MARGIN):
                if self._violates(corners[i]):
                    return BabOutcome(BabStatus.FOUND, corners[i], nodes, lps)
                phase = batch.phase[i]
                free = np.flatnonzero(phase == 0)
                if free.size == 0:
                    lps += 1
                    point = self._leaf_lp(phase)
                    if point is not None and self._violates(point):
                        return BabOutcome(BabStatus.FOUND, point, nodes, lps)
                    if point is not None:
                        return BabOutcome(BabStatus.UNKNOWN, None, nodes, lps)
                    continue
                j = free[np.argmax(self.score[free])]
                for sign in (-1, 1):
                    child = phase.copy()
                    child[j] = sign
                    queue.append((child, batch.alpha[i].copy(), batch.beta[i].copy()))
        return BabOutcome(BabStatus.ROBUST, None, nodes, lps)
