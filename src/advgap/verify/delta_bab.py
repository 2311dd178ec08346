"""The minimal L∞ distance as one certified branch and bound over ReLU splits, over one or several targets.

Question: the smallest δ at which some x in [0,1]^n with ‖x − x0‖∞ <= δ gives g_t(x) = y_t − y_label >= 0 for
one of the targets t.

Intermediate bounds are computed once on the box of radius R (at least the incumbent distance), so they hold on
every smaller box and for every target. A node (ReLU splits of one target) is bounded by the split relaxation of
`advgap.verify.bab` on the box of radius ρ = upper − tol, the first layer's bounds made exact on that box
(`SplitRelaxation.on_box`): if that bound stays below 0 the node holds no adversary
closer than ρ; otherwise its affine bound κ + ν·x of g gives, in closed form, the smallest radius at which it can
reach 0 (`PixelRooms.reach`), a proven lower bound on the minimal distance inside the node. Nodes are split best first
(smallest lower bound) until every node is closed. Each open node's box corner and lower-bound point are replayed
as candidate adversaries; a leaf (every needed neuron split) is one LP minimising the radius exactly.

The certified interval is [lower, upper]: lower the minimum of the open and closed nodes' lower bounds (capped by
upper and R), upper the L∞ distance of the best replayed witness.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from advgap.adversarial import margin
from advgap.verify.bab import SOUNDNESS_MARGIN, Nodes, Objective, SplitRelaxation, batch_size, splits_per_node
from advgap.verify.bounds import LayerBounds
from advgap.verify.milp import min_radius_affine_relu_lp
from advgap.verify.network import ReluNet, dense

LP_MARGIN = 1e-6  # a leaf LP's optimal radius counts as a lower bound only after subtracting this


class PixelRooms:
    """The room each pixel of x0 has inside [0, 1], upwards (1 − x0_j) and downwards (x0_j), sorted once and
    grouped by value (MNIST's background pixels share one), so that `reach` needs no per-row sort."""

    def __init__(self, x0: np.ndarray):
        rooms = np.concatenate([1.0 - x0, x0])
        self.x0, self.order = x0, np.argsort(rooms, kind="stable")
        ordered = rooms[self.order]
        self.starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
        self.rooms = ordered[self.starts]  # the distinct rooms, increasing

    def reach(self, nu: np.ndarray, kappa: np.ndarray, limit: float, level: float) -> np.ndarray:
        """Per row i, the smallest δ in [0, limit] with κ_i + max{ν_i·x : x in [0,1]^n, ‖x − x0‖∞ <= δ} >= level.

        inf where even δ = limit stays below `level`. The maximum is κ + ν·x0 + Σ_g w_g min(δ, cap_g) over the
        groups g of pixel directions with one room (pixel j upwards weighs max(ν_j, 0), downwards max(−ν_j, 0)),
        cap_g that room capped at `limit`: a concave increasing piecewise-linear function of δ, solved exactly
        between its breakpoints (the sorted caps).
        """
        slots = np.concatenate([np.maximum(nu, 0.0), np.maximum(-nu, 0.0)], axis=1)[:, self.order]
        weights = np.add.reduceat(slots, self.starts, axis=1)
        caps = np.minimum(self.rooms, limit)
        f0 = kappa + nu @ self.x0
        prefix = np.cumsum(weights * caps, axis=1)  # Σ_{g<=j} w_g c_g
        suffix = weights.sum(axis=1, keepdims=True) - np.cumsum(weights, axis=1)  # Σ_{g>j} w_g
        reached = f0[:, None] + prefix + caps * suffix >= level  # f(c_j) >= level
        first = np.argmax(reached, axis=1)
        rows = np.arange(len(f0))
        w_first = weights[rows, first]
        below_prefix = prefix[rows, first] - w_first * caps[first]  # Σ_{g<j} w_g c_g
        slope = suffix[rows, first] + w_first  # Σ_{g>=j} w_g
        delta = (level - f0 - below_prefix) / np.where(slope > 0, slope, 1.0)
        delta = np.clip(delta, 0.0, caps[first])
        delta = np.where(reached.any(axis=1), delta, np.inf)
        return np.where(f0 >= level, 0.0, delta)


def target_margins(net: ReluNet, point: np.ndarray, label: int, targets: Sequence[int]) -> np.ndarray:
    """`advgap.adversarial.margin` of `point` for each of `targets` (>= 0: adversarial for that target)."""
    logits = np.tile(net.forward(point), (len(targets), 1))
    return margin(logits, np.full(len(targets), label), np.asarray(targets))


def closest_target(net: ReluNet, point: np.ndarray, label: int, targets: Sequence[int]) -> int:
    """The target whose logit at `point` lies highest above the label's."""
    return int(targets[int(np.argmax(target_margins(net, point, label, targets)))])


@dataclass
class Incumbent:
    """The best replayed witness (at L∞ distance `upper`, reaching `target`) and the smallest lower bound of the
    nodes closed so far."""

    upper: float
    witness: np.ndarray | None = None
    target: int | None = None
    closed: float = np.inf

    def improve(self, upper: float, witness: np.ndarray | None, target: int | None) -> None:
        """Take the witness if it is closer than the current one."""
        if witness is not None and upper < self.upper:
            self.upper, self.witness, self.target = upper, witness, target


Shrink = Callable[[np.ndarray], np.ndarray]  # witness -> a witness at most as far


class DeltaSearch:
    """Branch and bound on the minimal distance from x0 to an adversary of `targets`, within radius R."""

    def __init__(self, net: ReluNet, x0: np.ndarray, label: int, targets: Sequence[int], incumbent: Incumbent,
                 radius: float, bounds: LayerBounds, tol: float):
        self.net, self.x0, self.label, self.targets = net, x0, label, list(targets)
        self.incumbent, self.radius, self.tol = incumbent, radius, tol
        self.relax = SplitRelaxation(net, bounds)
        self._on_box: tuple[float, SplitRelaxation] | None = None
        self.rooms = PixelRooms(x0)
        w, b = dense(net.weights[-1]), net.biases[-1]
        self.coef = np.stack([w[t] - w[label] for t in self.targets])
        self.const = np.array([b[t] - b[label] for t in self.targets])
        self.open: list[tuple] = []  # (lower bound, sequence number, target index, phases, α, β)
        self._seq = itertools.count()
        for ti in range(len(self.targets)):
            self._push(0.0, ti, self.relax.root())
        self.nodes = 0
        self.shared_upper: Callable[[], float] = lambda: np.inf  # an upper bound proven elsewhere (parallel runs)

    def rebound(self, bounds: LayerBounds, radius: float) -> None:
        """Continue with intermediate bounds valid on the box of a radius <= R (tighter, or on a smaller box).

        The open nodes stay valid: their splits, (α, β) and lower bounds do not depend on the bounds used."""
        self.relax = SplitRelaxation(self.net, bounds)
        self.radius, self._on_box = radius, None

    def rho(self) -> float:
        """The radius a node must be refuted on: upper − tol, within [0, R]."""
        upper = min(self.incumbent.upper, self.shared_upper())
        return self.radius if upper == np.inf else min(max(upper - self.tol, 0.0), self.radius)

    def lower(self) -> float:
        """The certified lower bound now."""
        open_min = self.open[0][0] if self.open else np.inf  # the heap's smallest
        upper = min(self.incumbent.upper, self.shared_upper())
        return float(min(upper, self.incumbent.closed, open_min, self.radius))

    def _push(self, bound: float, ti: int, node: tuple[list, list, list]) -> None:
        heapq.heappush(self.open, (bound, next(self._seq), ti, *node))

    def _close(self, bound: float) -> None:
        self.incumbent.closed = min(self.incumbent.closed, bound)

    def _offer(self, point: np.ndarray, shrink: Shrink | None) -> None:
        """Make `point`, or the closer witness `shrink` finds from it, the witness if it replays as adversarial for
        some target and is closer."""
        point = np.clip(point, 0.0, 1.0)
        if target_margins(self.net, point, self.label, self.targets).max() < 0:
            return
        inc = self.incumbent
        distance = float(np.abs(point - self.x0).max())
        if distance >= inc.upper:
            return
        best = point if shrink is None else shrink(point)
        inc.improve(float(np.abs(best - self.x0).max()), best, closest_target(self.net, best, self.label, self.targets))

    def _relax_on(self, rho: float, obj: Objective) -> SplitRelaxation:
        """The relaxation for a batch bounded on the ρ-box `obj` (ρ <= R): `SplitRelaxation.on_box` once ρ is
        below R, kept until ρ changes."""
        if rho >= self.radius:
            return self.relax
        if self._on_box is None or self._on_box[0] != rho:
            self._on_box = (rho, self.relax.on_box(obj.lo, obj.hi))
        return self._on_box[1]

    def _take(self, batch_size: int) -> list[tuple]:
        take, rho = [], self.rho()
        while self.open and len(take) < batch_size:
            item = heapq.heappop(self.open)
            if item[0] >= rho:
                self._close(item[0])
            else:
                take.append(item)
        return take

    def _leaf(self, relax: SplitRelaxation, obj: Objective, rho: float, ti: int, phase: list[np.ndarray],
              bound: float, shrink: Shrink | None) -> None:
        """Settle a leaf by one LP on the ρ-box of `obj`: its exact minimal radius (ρ if it has none within ρ)
        closes it, its optimum is offered as a witness."""
        problem, active, on, off, concave = relax.leaf_problem(phase, self.coef[ti], float(self.const[ti]),
                                                               obj.lo, obj.hi)
        radius, point = min_radius_affine_relu_lp(problem, active, on, off, concave, self.x0,
                                                  witness_below=self.incumbent.upper)
        self._close(max(bound, min(radius - LP_MARGIN, rho)))
        if point is not None:
            self._offer(point, shrink)

    def run(self, deadline: float, shrink: Shrink | None = None, iters: int = 3) -> bool:
        """Search until every node is closed (True) or the deadline passes (False). `iters` slope steps per batch:
        3 rather than 5 saves 5-8% on the study nets (more nodes, each cheaper), the same on deeper ones."""
        size = batch_size(self.net)
        while self.open:
            if time.monotonic() > deadline:
                return False
            take = self._take(size)
            if take:
                self._expand(take, shrink, iters, deadline)
        return True

    def _expand(self, take: list[tuple], shrink: Shrink | None, iters: int, deadline: float) -> None:
        """Bound a batch of nodes on the box of radius ρ; close the refuted ones, split the others."""
        self.nodes += len(take)
        rho = self.rho()
        parent = np.array([item[0] for item in take])
        ti = np.array([item[2] for item in take])
        obj = Objective(self.coef[ti], self.const[ti], np.clip(self.x0 - rho, 0, 1), np.clip(self.x0 + rho, 0, 1))
        nodes = Nodes.stack([item[3:] for item in take])
        relax = self._relax_on(rho, obj)
        best, rel = relax.optimise(nodes, obj, iters, deadline)
        bound = np.maximum(parent, rho)  # refuted on the ρ-box: no adversary closer than ρ in the node
        live = np.flatnonzero(best.bound >= -SOUNDNESS_MARGIN)
        if live.size:  # the affine bound holds on the ρ-box, where it reaches 0
            reach = self.rooms.reach(best.nu_in[live], best.kappa[live], rho, -SOUNDNESS_MARGIN)
            bound[live] = np.maximum(parent[live], np.minimum(reach, rho))
            self._offer_candidates(obj.corner(best.nu_in[live]), best.nu_in[live], bound[live], shrink)
        box_rho, rho = rho, self.rho()  # offers may have lowered the incumbent
        open_rows = [int(i) for i in np.flatnonzero(bound < rho)]
        for i in np.flatnonzero(bound >= rho):
            self._close(float(bound[i]))
        count = splits_per_node(len(open_rows), len(self.open), batch_size(self.net))
        for i, splits in zip(open_rows, relax.choose_splits(nodes, open_rows, rel, obj, count=count), strict=True):
            if not splits:
                self._leaf(relax, obj, box_rho, int(ti[i]), nodes.phases(i), float(bound[i]), shrink)
            else:
                for child in nodes.children(i, splits):
                    self._push(float(bound[i]), int(ti[i]), child)

    def _offer_candidates(self, corner: np.ndarray, nu_in: np.ndarray, bound: np.ndarray,
                          shrink: Shrink | None) -> None:
        """Replay each node's maximising corner and its lower-bound point; offer the adversarial ones."""
        up, down = nu_in > 0, nu_in < 0
        room = up * (1.0 - self.x0) + down * self.x0  # toward ν's side of the unit box
        step = np.minimum(room, np.where(np.isfinite(bound), bound, 0.0)[:, None])
        points = np.concatenate([corner, self.x0 + (up.astype(np.int8) - down) * step])
        logits = self.net.forward(points)
        gain = logits[:, self.targets].max(axis=1) - logits[:, self.label]
        hits = np.flatnonzero(gain >= 0)
        if hits.size:  # the closest one; PGD from it (`shrink`) is what finds the closer ones
            self._offer(points[hits[np.argmin(np.abs(points[hits] - self.x0).max(axis=1))]], shrink)
