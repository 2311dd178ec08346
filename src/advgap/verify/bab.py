"""Branch and bound over ReLU splits (β-CROWN style, numpy): the shared relaxation and the property-term search.

Question for one single-row objective: can g = c·h_H + c0 (h_H the last hidden layer's output) reach 0 somewhere in
a box? A node fixes some unstable neurons active (z >= 0) or inactive (z <= 0). Its bound comes from one backward
pass through the net with linear relaxations (CROWN): a neuron whose coefficient ν is >= 0 takes the upper triangle
line s(z − l), s = u/(u − l); one with ν < 0 takes the lower line α z, α in [0, 1]; a split neuron is linear and
its constraint enters with a Lagrange multiplier β >= 0 (+β z for z >= 0, −β z for z <= 0). The result is an
affine upper bound κ + ν·x of g on the node, maximised over the box in closed form. *Every* (α, β) gives a valid
bound, so optimising them by projected (sub)gradient steps can only tighten it. The subgradient is a forward pass
of the relaxed net at the maximising box corner: ∂bound/∂α_j = ν_j ẑ_j and ∂bound/∂β_j = ±ẑ_j.

Only neurons that can loosen the bound are split: in the last hidden layer an unstable neuron with c_j <= 0 makes
c_j·relu(z_j) concave, which a leaf LP (a >= max(0, z)) treats exactly. Intermediate bounds are the root's, valid
on every node and on every smaller box. `SplitRelaxation` holds that machinery for batches of nodes with their own
objective and box; `TermBab` decides one property term with it, `advgap.verify.delta_bab` searches the minimal
distance with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from functools import cached_property

import numpy as np

from advgap.verify.bounds import LayerBounds, back_substitute, box_min
from advgap.verify.milp import AffineReluProblem, max_affine_relu_lp
from advgap.verify.network import ReluNet
from advgap.verify.spec import Term

SOUNDNESS_MARGIN = 1e-7  # a node is pruned only if its bound on g is below -SOUNDNESS_MARGIN
TIE_BREAK = 0.01  # weight of the children's full bound sum in the branching score (their positive parts: weight 1)
BATCH_ENTRIES = 2**18  # nodes per batch × hidden ReLUs at most: a batch's arrays stay small, its time short


def batch_size(net: ReluNet, largest: int = 64) -> int:
    """Nodes bounded together: `largest`, fewer on nets with more than BATCH_ENTRIES / largest ReLUs."""
    return max(1, min(largest, BATCH_ENTRIES // max(1, sum(net.hidden_sizes))))


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
class Relaxation:
    """One evaluation of a batch's bounds: per node the bound, its maximising corner and the affine bound κ + ν·x
    it maximises (`kappa`, `nu_in`); per hidden layer k the coefficients ν_k on its outputs, the relaxed
    pre-activations ẑ_k at the corner, and the relaxation lines."""

    bound: np.ndarray
    corner: np.ndarray | None  # None when computed without the relaxed forward pass (`Objective.corner` gives it)
    kappa: np.ndarray
    nu_in: np.ndarray
    nus: list[np.ndarray]
    zhat: list[np.ndarray]
    slopes: list[np.ndarray]
    icpts: list[np.ndarray]


@dataclass
class Nodes:
    """A batch of nodes: per hidden layer, phases (+1, −1, 0) and the dual variables α, β (all (B, n_k))."""

    phase: list[np.ndarray]
    alpha: list[np.ndarray]
    beta: list[np.ndarray]

    @classmethod
    def stack(cls, rows: list[tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]]) -> Nodes:
        depth = len(rows[0][0])
        return cls(*([np.stack([r[part][k] for r in rows]) for k in range(depth)] for part in range(3)))

    def take(self, idx: np.ndarray) -> Nodes:
        """The nodes at `idx` (copies), e.g. one row per child to be."""
        return Nodes([p[idx] for p in self.phase], [a[idx] for a in self.alpha], [b[idx] for b in self.beta])

    def phases(self, i: int) -> list[np.ndarray]:
        return [p[i] for p in self.phase]

    def children(self, i: int, splits: list[tuple[int, int]]) -> list[tuple[list, list, list]]:
        """The 2^len(splits) children of node i fixing each (layer, neuron) of `splits` both ways, inactive first.
        They share the parent's rows (views, never written: batches are stacked copies) except split layers'
        phases."""
        phases = [[p[i] for p in self.phase]]
        for layer, neuron in splits:
            grown = []
            for phase in phases:
                for sign in (-1, 1):
                    kid = list(phase)
                    kid[layer] = kid[layer].copy()
                    kid[layer][neuron] = sign
                    grown.append(kid)
            phases = grown
        alpha, beta = [a[i] for a in self.alpha], [b[i] for b in self.beta]
        return [(phase, alpha, beta) for phase in phases]


def branching_score(children: np.ndarray) -> np.ndarray:
    """Per candidate split, from its two children's bounds (rows): the sum of their positive parts, plus
    TIE_BREAK times their sum. Lower is better: a child below 0 is refuted however far below it is, so only what
    stays open counts (fixed-radius checks: 7-8% fewer nodes than the plain sum on 784-100-100-10 and 784-100×4-10,
    1-13% on the adversarial study net)."""
    return np.maximum(children, 0.0).sum(axis=1) + TIE_BREAK * children.sum(axis=1)


def splits_per_node(open_nodes: int, waiting: int, batch: int, most: int = 4) -> int:
    """How many neurons each of `open_nodes` splits at once: one, or more (up to `most`, 2^most children) while
    their children and the `waiting` nodes still fit one batch. A small frontier (the first rounds of every
    search) then fills its batches instead of growing by doublings, each round costing as much as a full one."""
    count = 1
    while count < most and waiting + open_nodes * 2 ** (count + 1) <= batch:
        count += 1
    return count


@dataclass(frozen=True)
class Objective:
    """Per node i of a batch: g = coef[i]·h_H + const[i], maximised over the box [lo, hi] shared by the batch."""

    coef: np.ndarray
    const: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def rows(self, idx: np.ndarray) -> Objective:
        return Objective(self.coef[idx], self.const[idx], self.lo, self.hi)

    def box_max(self, nu: np.ndarray) -> np.ndarray:
        """Per row, max of nu·x over the box, in nu's precision: ν·mid + |ν|·rad (one pass over ν's rows; the
        rounding of mid ± rad against the bounds, <= 1 ulp per coordinate, is far inside SOUNDNESS_MARGIN)."""
        mid, rad = (self.lo + self.hi) / 2, (self.hi - self.lo) / 2
        return nu @ mid.astype(nu.dtype) + np.abs(nu) @ rad.astype(nu.dtype)

    def corner(self, nu: np.ndarray) -> np.ndarray:
        """Per row, the box corner where nu·x is largest (to rounding, inside the box), in nu's precision.
        (A masked sum: np.where with broadcast bounds is 4x slower on these rows.)"""
        lo, hi = self.lo.astype(nu.dtype, copy=False), self.hi.astype(nu.dtype, copy=False)
        return np.minimum(lo + (nu > 0) * (hi - lo), hi)


class SplitRelaxation:
    """The CROWN/β relaxation of `net` under ReLU splits, with intermediate bounds fixed to the root's.

    Bounds it reports are computed in float64. The subgradient steps on (α, β) and the trial children of the
    branching rule run on `single`, the same relaxation in float32: they only choose, they prove nothing."""

    def __init__(self, net: ReluNet, bounds: LayerBounds, dtype: type = np.float64):
        self.net, self.dtype = (net if dtype is np.float64 else net.single), dtype
        self.depth = len(net.hidden_sizes)
        self.lower = tuple(np.asarray(v, dtype=dtype) for v in bounds.lower)
        self.upper = tuple(np.asarray(v, dtype=dtype) for v in bounds.upper)
        self._bounds = bounds
        # masks and slopes from the float64 bounds, so that both twins agree on which neurons are unstable
        self.unstable = [(lo_k < 0) & (up_k > 0) for lo_k, up_k in zip(bounds.lower, bounds.upper, strict=True)]
        self.active = [lo_k >= 0 for lo_k in bounds.lower]
        self.slope = [np.where(un, up / np.where(un, up - lo_k, 1.0), 0.0).astype(dtype)
                      for un, lo_k, up in zip(self.unstable, bounds.lower, bounds.upper, strict=True)]

    def on_box(self, lo: np.ndarray, hi: np.ndarray) -> SplitRelaxation:
        """The relaxation for nodes bounded on [lo, hi], a box inside the one of the bounds: the first layer's
        pre-activation bounds, affine in x, are made exact there (deeper layers keep theirs)."""
        w, b = self.net.weights[0], self.net.biases[0]
        b0 = self._bounds
        lower = np.maximum(b0.lower[0], box_min(w, lo, hi) + b)
        upper = np.minimum(b0.upper[0], -box_min(-w, lo, hi) + b)
        return SplitRelaxation(self.net, LayerBounds((lower, *b0.lower[1:]), (upper, *b0.upper[1:])), self.dtype)

    @cached_property
    def single(self) -> SplitRelaxation:
        """The float32 twin (see the class docstring)."""
        return self if self.dtype is np.float32 else SplitRelaxation(self.net, self._bounds, np.float32)

    def root(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Phases, α and β of an unsplit node (α: the DeepPoly choice). α and β are float32, the precision of the
        steps that move them; any α in [0, 1] and β >= 0 gives a valid bound, in either precision."""
        sizes = self.net.hidden_sizes
        alpha = [np.where(up > -lo_k, 1.0, 0.0).astype(np.float32)
                 for lo_k, up in zip(self.lower, self.upper, strict=True)]
        return [np.zeros(s, np.int8) for s in sizes], alpha, [np.zeros(s, np.float32) for s in sizes]

    def backward(self, nodes: Nodes, obj: Objective, relaxed_forward: bool = True) -> Relaxation:
        """Bounds of a batch of nodes with their current (α, β), and what the subgradient and branching need
        (ẑ only with `relaxed_forward`: bounds alone skip that pass)."""
        nus, slopes, icpts = [None] * self.depth, [None] * self.depth, [None] * self.depth

        def relax(k: int, nu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # an upper bound of g: the upper line where the coefficient is >= 0, α elsewhere; split neurons fixed
            phase, free = nodes.phase[k], (nodes.phase[k] == 0) & self.unstable[k]
            positive = nu >= 0
            fixed_on = (phase > 0) | ((phase == 0) & self.active[k])
            alpha = nodes.alpha[k].astype(self.dtype, copy=False)
            slope = np.where(fixed_on, 1.0, np.where(free, np.where(positive, self.slope[k], alpha), 0.0))
            icpt = np.where(free & positive, -self.slope[k] * self.lower[k], 0.0)
            nus[k], slopes[k], icpts[k] = nu, slope, icpt
            return slope, icpt, phase * nodes.beta[k].astype(self.dtype, copy=False)

        coef = np.asarray(obj.coef, dtype=self.dtype)
        nu, kappa = back_substitute(self.net, coef, obj.const.astype(self.dtype), self.depth - 1, relax)
        bound = kappa + obj.box_max(nu)
        zhat, corner = [], None
        if relaxed_forward:
            corner = h = obj.corner(nu)
            for k in range(self.depth):
                z = h @ self.net.weights_t[k] + self.net.biases[k]
                zhat.append(z)
                h = slopes[k] * z + icpts[k]
        return Relaxation(bound, corner, kappa, nu, nus, zhat, slopes, icpts)

    def optimise(self, nodes: Nodes, obj: Objective, iters: int, deadline: float = np.inf
                 ) -> tuple[Relaxation, Relaxation]:
        """Projected subgradient steps on (α, β) in float32, fewer once `deadline` passes; returns per node the
        float64 relaxation at the best (α, β) seen, and the last float32 one. The nodes keep the last (α, β)."""
        fast = self.single
        rel = fast.backward(nodes, obj)
        best_bound = rel.bound
        best_alpha, best_beta = [a.copy() for a in nodes.alpha], [b.copy() for b in nodes.beta]
        for it in range(iters):
            if np.all(best_bound < -100 * SOUNDNESS_MARGIN) or time.monotonic() > deadline:  # float32: well below
                break
            step = 0.3 / (1 + it) ** 0.5
            for k in range(self.depth):
                free = (nodes.phase[k] == 0) & self.unstable[k] & (rel.nus[k] < 0)
                grad_alpha = np.where(free, rel.nus[k] * rel.zhat[k], 0.0)
                scale_a = np.abs(grad_alpha).max(axis=1, keepdims=True) + 1e-12
                nodes.alpha[k] = np.clip(nodes.alpha[k] - step * grad_alpha / scale_a, 0.0, 1.0)
                grad_beta = nodes.phase[k] * rel.zhat[k]
                scale_b = np.abs(grad_beta).max(axis=1, keepdims=True) + 1e-12
                nu_scale = np.abs(rel.nus[k]).max(axis=1, keepdims=True)
                nodes.beta[k] = np.maximum(nodes.beta[k] - step * nu_scale * grad_beta / scale_b, 0.0)
            rel = fast.backward(nodes, obj)
            improved = rel.bound < best_bound
            best_bound = np.where(improved, rel.bound, best_bound)
            for k in range(self.depth):
                best_alpha[k][improved] = nodes.alpha[k][improved]
                best_beta[k][improved] = nodes.beta[k][improved]
        return self.backward(Nodes(nodes.phase, best_alpha, best_beta), obj, relaxed_forward=False), rel

    def _candidates(self, nodes: Nodes, rows: list[int], rel: Relaxation, obj: Objective,
                    top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per node of `rows`, up to `top` free needed neurons by intercept score ν⁺ s (−l) (BaBSR-like), best
        first: their layers and indices (len(rows), top) and which of them exist (none at a leaf)."""
        scores = []
        for k in range(self.depth):
            free = (nodes.phase[k][rows] == 0) & self.unstable[k]
            if k == self.depth - 1:
                free &= obj.coef[rows] > 0  # in the last layer only c_j > 0 loosens the bound (module docstring)
            nu = rel.nus[k][rows]
            width = np.minimum(-self.lower[k], self.upper[k])
            score = np.maximum(nu, 0.0) * self.slope[k] * (-self.lower[k]) + 1e-3 * np.abs(nu) * width
            scores.append(np.where(free, score, -np.inf))
        flat = np.concatenate(scores, axis=1)
        best = np.argsort(-flat, axis=1, kind="stable")[:, :top]
        offsets = np.cumsum([0, *self.net.hidden_sizes])
        layer = np.searchsorted(offsets, best, side="right") - 1
        return layer, best - offsets[layer], np.isfinite(np.take_along_axis(flat, best, axis=1))

    def choose_splits(self, nodes: Nodes, rows: list[int], rel: Relaxation, obj: Objective,
                      top: int = 8, count: int = 1) -> list[list[tuple[int, int]]]:
        """Filtered smart branching: per node, of its `top` candidates the `count` splits whose two child bounds'
        positive parts sum lowest (a child below 0 is refuted however far below; the full sum breaks ties), best
        first, judged by one bound evaluation of all candidate children with the parent's (α, β);
        an empty list at a leaf."""
        if not rows:
            return []
        layer, index, ok = self._candidates(nodes, rows, rel, obj, top)
        node, slot = np.nonzero(ok)  # one entry per candidate, node by node
        if not node.size:
            return [[] for _ in rows]
        owner = np.repeat(np.asarray(rows)[node], 2)  # the inactive child, then the active one
        ks, js = np.repeat(layer[node, slot], 2), np.repeat(index[node, slot], 2)
        signs = np.tile(np.array([-1, 1], np.int8), node.size)
        trial = nodes.take(owner)
        for k in range(self.depth):
            at = np.flatnonzero(ks == k)
            trial.phase[k][at, js[at]] = signs[at]
        children = self.single.backward(trial, obj.rows(owner), relaxed_forward=False)
        pairs = children.bound.reshape(-1, 2)
        score = np.full(ok.shape, np.inf)
        score[node, slot] = branching_score(pairs)
        picks = np.argsort(score, axis=1, kind="stable")[:, :count]
        return [[(int(layer[r, p]), int(index[r, p])) for p in picks[r] if ok[r, p]] for r in range(len(rows))]

    def leaf_problem(self, phase: list[np.ndarray], coef: np.ndarray, const: float, lo: np.ndarray,
                     hi: np.ndarray) -> tuple[AffineReluProblem, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A leaf (every needed neuron split) as an affine+ReLU problem on [lo, hi], with the last layer's active,
        split-on, split-off and concave neurons."""
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
        problem = AffineReluProblem(w @ m, w @ v + b, coef, const, lo, hi, np.concatenate(rows), np.concatenate(consts))
        last = phase[-1]
        active = (last > 0) | ((last == 0) & self.active[-1])
        concave = np.flatnonzero((last == 0) & self.unstable[-1])
        return problem, active, last > 0, last < 0, concave


class TermBab:
    """Branch and bound deciding one single-row term of `net` on the box [lo, hi], given root bounds."""

    def __init__(self, net: ReluNet, term: Term, lo: np.ndarray, hi: np.ndarray, bounds: LayerBounds):
        if term.A.shape[0] != 1:
            raise ValueError("TermBab needs a single-row term")
        self.net, self.term, self.lo, self.hi = net, term, lo, hi
        self.relax = SplitRelaxation(net, bounds)
        self.c = -(term.A @ net.weights[-1])[0]
        self.c0 = float(term.b[0] - term.A[0] @ net.biases[-1])

    def is_counterexample(self, x: np.ndarray) -> bool:
        return bool(np.all(x >= self.lo) and np.all(x <= self.hi) and self.term.holds(self.net.forward(x)))

    def _leaf_point(self, phase: list[np.ndarray]) -> np.ndarray | None:
        """Exact LP on a leaf: the maximiser of g if g can reach 0 there, else None."""
        problem, active, on, off, concave = self.relax.leaf_problem(phase, self.c, self.c0, self.lo, self.hi)
        value, point = max_affine_relu_lp(problem, active, on, off, concave)
        return point if value >= 0 else None

    def run(self, deadline: float, iters: int = 10) -> BabOutcome:
        """Decide: ROBUST (proven max g < 0), FOUND (a replayed counterexample), TIMEOUT or UNKNOWN."""
        queue = [self.relax.root()]
        size = batch_size(self.net)
        nodes_done = lps = 0
        while queue:
            if time.monotonic() > deadline:
                return BabOutcome(BabStatus.TIMEOUT, None, nodes_done, lps)
            take, queue = queue[-size:], queue[:-size]
            nodes = Nodes.stack(take)
            obj = Objective(np.tile(self.c, (len(take), 1)), np.full(len(take), self.c0), self.lo, self.hi)
            nodes_done += len(take)
            best, rel = self.relax.optimise(nodes, obj, iters, deadline)
            open_rows = [int(i) for i in np.flatnonzero(best.bound >= -SOUNDNESS_MARGIN)]
            for i in open_rows:
                corner = obj.corner(best.nu_in[i])
                if self.is_counterexample(corner):
                    return BabOutcome(BabStatus.FOUND, corner, nodes_done, lps)
            count = splits_per_node(len(open_rows), len(queue), size)
            for i, splits in zip(open_rows, self.relax.choose_splits(nodes, open_rows, rel, obj, count=count),
                                 strict=True):
                if not splits:
                    lps += 1
                    point = self._leaf_point(nodes.phases(i))
                    if point is None:
                        continue
                    if self.is_counterexample(point):
                        return BabOutcome(BabStatus.FOUND, point, nodes_done, lps)
                    return BabOutcome(BabStatus.UNKNOWN, None, nodes_done, lps)
                queue += nodes.children(i, splits)
        return BabOutcome(BabStatus.ROBUST, None, nodes_done, lps)
