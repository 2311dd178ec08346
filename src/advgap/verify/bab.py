"""Branch and bound over ReLU splits for one single-row property term, any depth (β-CROWN style, numpy).

Question: can `a·y <= b` hold somewhere in the box? With g = b − a·y = c·h_H + c0 (h_H the last hidden layer's
output) this asks whether max_x g(x) >= 0.

A node fixes some unstable neurons active (z >= 0) or inactive (z <= 0). Its bound comes from one backward pass
through the net with linear relaxations (CROWN): a neuron whose coefficient ν is >= 0 takes the upper triangle
line s(z − l), s = u/(u − l); one with ν < 0 takes the lower line α z, α in [0, 1]; a split neuron is linear and
its constraint enters with a Lagrange multiplier β >= 0 (+β z for z >= 0, −β z for z <= 0). The result is linear
in x and maximised over the box in closed form. *Every* (α, β) gives a valid upper bound, so optimising them by
projected (sub)gradient steps can only tighten it. The subgradient is a forward pass of the relaxed net at the
maximising box corner: ∂bound/∂α_j = ν_j ẑ_j and ∂bound/∂β_j = ±ẑ_j, ẑ the relaxed pre-activations there.

Only neurons that can loosen the bound are split: in the last hidden layer an unstable neuron with c_j <= 0 makes
c_j·relu(z_j) concave, which the leaf LP (a >= max(0, z)) treats exactly. A node whose bound is below
−SOUNDNESS_MARGIN is pruned; its maximising corner is tried as a counterexample; a leaf (every needed neuron
split) is settled exactly by one LP in HiGHS. Intermediate bounds are the root's (CROWN), valid on every node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import numpy as np

from advgap.verify.bounds import LayerBounds
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
class _Relaxation:
    """One evaluation of a batch's bounds: per node the bound and maximising corner; per hidden layer k the
    coefficients ν_k on its outputs, the relaxed pre-activations ẑ_k at the corner, and the relaxation lines."""

    bound: np.ndarray
    corner: np.ndarray
    nus: list[np.ndarray]
    zhat: list[np.ndarray]
    slopes: list[np.ndarray]
    icpts: list[np.ndarray]


@dataclass
class _Nodes:
    """A batch of nodes: per hidden layer, phases (+1, −1, 0) and the dual variables α, β (all (B, n_k))."""

    phase: list[np.ndarray]
    alpha: list[np.ndarray]
    beta: list[np.ndarray]

    def row(self, i: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        return [p[i].copy() for p in self.phase], [a[i].copy() for a in self.alpha], [b[i].copy() for b in self.beta]


class TermBab:
    """Branch and bound deciding one single-row term of `net` on the box [lo, hi], given root bounds."""

    def __init__(self, net: ReluNet, term: Term, lo: np.ndarray, hi: np.ndarray, bounds: LayerBounds):
        if term.A.shape[0] != 1:
            raise ValueError("TermBab needs a single-row term")
        self.net, self.term, self.lo, self.hi = net, term, lo, hi
        self.depth = len(net.hidden_sizes)
        self.c = -(term.A @ net.weights[-1])[0]
        self.c0 = float(term.b[0] - term.A[0] @ net.biases[-1])
        self.lower, self.upper = bounds.lower, bounds.upper
        self.unstable = [(lo_k < 0) & (up_k > 0) for lo_k, up_k in zip(self.lower, self.upper, strict=True)]
        self.active = [lo_k >= 0 for lo_k in self.lower]
        self.slope = [np.where(un, up / np.where(un, up - lo_k, 1.0), 0.0)
                      for un, lo_k, up in zip(self.unstable, self.lower, self.upper, strict=True)]
        self.needed = [*self.unstable[:-1], self.unstable[-1] & (self.c > 0)]

    def is_counterexample(self, x: np.ndarray) -> bool:
        return bool(np.all(x >= self.lo) and np.all(x <= self.hi) and self.term.holds(self.net.forward(x)))

    def _backward(self, nodes: _Nodes) -> tuple[np.ndarray, np.ndarray, list, list, list]:
        """One backward pass: per node the bound and its maximising corner, and per layer ν, slopes, intercepts."""
        n = len(nodes.phase[0])
        nu = np.broadcast_to(self.c, (n, len(self.c))).copy()
        kappa = np.full(n, self.c0)
        nus, slopes, icpts = [None] * self.depth, [None] * self.depth, [None] * self.depth
        for k in reversed(range(self.depth)):
            phase, free = nodes.phase[k], (nodes.phase[k] == 0) & self.unstable[k]
            positive = nu >= 0
            fixed_on = (phase > 0) | ((phase == 0) & self.active[k])
            slope = np.where(fixed_on, 1.0, np.where(free, np.where(positive, self.slope[k], nodes.alpha[k]), 0.0))
            icpt = np.where(free & positive, -self.slope[k] * self.lower[k], 0.0)
            zeta = nu * slope + phase * nodes.beta[k]
            kappa += (nu * icpt).sum(axis=1) + zeta @ self.net.biases[k]
            nus[k], slopes[k], icpts[k] = nu, slope, icpt
            nu = zeta @ self.net.weights[k]
        corner = np.where(nu > 0, self.hi, self.lo)
        return kappa + np.einsum("bi,bi->b", nu, corner), corner, nus, slopes, icpts

    def _bound(self, nodes: _Nodes) -> _Relaxation:
        """Bounds of a batch of nodes with their current (α, β), and what the subgradient and branching need."""
        bound, corner, nus, slopes, icpts = self._backward(nodes)
        zhat, h = [], corner
        for k in range(self.depth):
            z = h @ self.net.weights_t[k] + self.net.biases[k]
            zhat.append(z)
            h = slopes[k] * z + icpts[k]
        return _Relaxation(bound, corner, nus, zhat, slopes, icpts)

    def _optimise(self, nodes: _Nodes, iters: int) -> tuple[np.ndarray, np.ndarray, _Relaxation]:
        """Projected subgradient steps on (α, β): the best bound per node, its corner, and the last relaxation."""
        rel = self._bound(nodes)
        best, best_corner = rel.bound, rel.corner
        for it in range(iters):
            if np.all(best < -SOUNDNESS_MARGIN):
                break
            step = 0.3 / (1 + it) ** 0.5
            nus, zhat = rel.nus, rel.zhat
            for k in range(self.depth):
                free = (nodes.phase[k] == 0) & self.unstable[k] & (nus[k] < 0)
                grad_alpha = np.where(free, nus[k] * zhat[k], 0.0)
                scale_a = np.abs(grad_alpha).max(axis=1, keepdims=True) + 1e-12
                nodes.alpha[k] = np.clip(nodes.alpha[k] - step * grad_alpha / scale_a, 0.0, 1.0)
                grad_beta = nodes.phase[k] * zhat[k]
                scale_b = np.abs(grad_beta).max(axis=1, keepdims=True) + 1e-12
                nu_scale = np.abs(nus[k]).max(axis=1, keepdims=True)
                nodes.beta[k] = np.maximum(nodes.beta[k] - step * nu_scale * grad_beta / scale_b, 0.0)
            rel = self._bound(nodes)
            better = rel.bound < best
            best = np.where(better, rel.bound, best)
            best_corner = np.where(better[:, None], rel.corner, best_corner)
        return best, best_corner, rel

    def _candidates(self, phase: list[np.ndarray], rel: _Relaxation, i: int, top: int) -> list[tuple[int, int]]:
        """Up to `top` free needed neurons of node i by intercept score ν⁺ s (−l) (BaBSR-like); [] at a leaf."""
        scored = []
        for k in range(self.depth):
            free = np.flatnonzero((phase[k] == 0) & self.needed[k])
            if free.size:
                nu = rel.nus[k][i, free]
                width = np.minimum(-self.lower[k][free], self.upper[k][free])
                score = np.maximum(nu, 0.0) * self.slope[k][free] * (-self.lower[k][free]) + 1e-3 * np.abs(nu) * width
                scored += [(float(sc), k, int(j)) for sc, j in zip(score, free, strict=True)]
        scored.sort(reverse=True)
        return [(k, j) for _, k, j in scored[:top]]

    def _choose_splits(
        self, nodes: _Nodes, rows: list[int], rel: _Relaxation, top: int = 8
    ) -> list[tuple[int, int] | None]:
        """Filtered smart branching: per node, of its `top` candidates the split whose two child bounds sum lowest,
        judged by one bound evaluation of all candidate children with the parent's (α, β)."""
        options = [self._candidates([p[i] for p in nodes.phase], rel, i, top) for i in rows]
        trial: list[tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]] = []
        for i, cands in zip(rows, options, strict=True):
            for k, j in cands:
                for sign in (-1, 1):
                    phase, alpha, beta = nodes.row(i)
                    phase[k][j] = sign
                    trial.append((phase, alpha, beta))
        if not trial:
            return [None] * len(rows)
        children = _Nodes(*([np.stack([t[part][k] for t in trial]) for k in range(self.depth)] for part in range(3)))
        pair_sum = self._backward(children)[0].reshape(-1, 2).sum(axis=1)
        choices, at = [], 0
        for cands in options:
            if not cands:
                choices.append(None)
                continue
            choices.append(cands[int(np.argmin(pair_sum[at : at + len(cands)]))])
            at += len(cands)
        return choices

    def _leaf_point(self, phase: list[np.ndarray]) -> np.ndarray | None:
        """Exact LP on a leaf: the maximiser of g if g can reach 0 there, else None."""
        n = self.net.n_inputs
        m, v = np.eye(n), np.zeros(n)
        rows, consts = [np.zeros((0, n))], [np.zeros(0)]
        for k in range(self.depth - 1):
            m, v = self.net.weights[k] @ m, self.net.weights[k] @ v + self.net.biases[k]
            split = phase[k] != 0
            rows.append(phase[k][split, None] * m[split])
            consts.append(phase[k][split] * v[split])
            on = (phase[k] > 0) | ((phase[k] == 0) & self.active[k])
            m, v = m * on[:, None], v * on
        w, b = self.net.weights[-2], self.net.biases[-2]
        problem = AffineReluProblem(w @ m, w @ v + b, self.c, self.c0, self.lo, self.hi,
                                    np.concatenate(rows), np.concatenate(consts))
        last = phase[-1]
        active = (last > 0) | ((last == 0) & self.active[-1])
        concave = np.flatnonzero((last == 0) & self.unstable[-1])
        value, point = max_affine_relu_lp(problem, active, last > 0, last < 0, concave)
        return point if value >= 0 else None

    def run(self, deadline: float, batch_size: int = 64, iters: int = 10) -> BabOutcome:
        """Decide: ROBUST (proven max g < 0), FOUND (a replayed counterexample), TIMEOUT or UNKNOWN."""
        sizes = self.net.hidden_sizes
        alpha0 = [np.where(up > -lo_k, 1.0, 0.0) for lo_k, up in zip(self.lower, self.upper, strict=True)]
        queue = [([np.zeros(s, np.int8) for s in sizes], alpha0, [np.zeros(s) for s in sizes])]
        nodes_done = lps = 0
        while queue:
            if time.monotonic() > deadline:
                return BabOutcome(BabStatus.TIMEOUT, None, nodes_done, lps)
            take, queue = queue[-batch_size:], queue[:-batch_size]
            nodes = _Nodes(*([np.stack([t[part][k] for t in take]) for k in range(self.depth)] for part in range(3)))
            nodes_done += len(take)
            best, corners, rel = self._optimise(nodes, iters)
            open_rows = [int(i) for i in np.flatnonzero(best >= -SOUNDNESS_MARGIN)]
            for i in open_rows:
                if self.is_counterexample(corners[i]):
                    return BabOutcome(BabStatus.FOUND, corners[i], nodes_done, lps)
            for i, split in zip(open_rows, self._choose_splits(nodes, open_rows, rel), strict=True):
                phase, alpha, beta = nodes.row(i)
                if split is None:
                    lps += 1
                    point = self._leaf_point(phase)
                    if point is None:
                        continue
                    if self.is_counterexample(point):
                        return BabOutcome(BabStatus.FOUND, point, nodes_done, lps)
                    return BabOutcome(BabStatus.UNKNOWN, None, nodes_done, lps)
                k, j = split
                for sign in (-1, 1):
                    child = [p.copy() for p in phase]
                    child[k][j] = sign
                    queue.append((child, [a.copy() for a in alpha], [b.copy() for b in beta]))
        return BabOutcome(BabStatus.ROBUST, None, nodes_done, lps)
