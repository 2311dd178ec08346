"""The native engine's minimal L∞ distance: a certified interval [lower, upper] around the closest adversary.

Plan per query: PGD by bisection on δ gives the first upper bound (a replayed witness). Intermediate bounds on the
box of that radius R — CROWN first, tightened (`advgap.verify.tighten`) once a quick search has not finished — are
shared by every target and every smaller radius, and one branch and bound over all targets
(`advgap.verify.delta_bab`) raises the lower end and lowers the upper one. When the incumbent falls well below R,
the bounds are recomputed on the smaller box; the search goes on with its open nodes under the new bounds. With
several workers, a search still open after `PARALLEL_AFTER` seconds continues in forked processes
(`advgap.verify.parallel`). The lower end is the best lower bound the search proved.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from advgap.verify.bounds import LayerBounds, crown_bounds
from advgap.verify.delta_bab import DeltaSearch, Incumbent, closest_target
from advgap.verify.falsify import pgd_falsify
from advgap.verify.native import ENGINE, single_threaded_blas
from advgap.verify.network import ReluNet
from advgap.verify.parallel import run_in_parallel
from advgap.verify.result import DistanceResult, DistanceStatus
from advgap.verify.spec import linf_box, robustness_spec
from advgap.verify.tighten import count_unstable, tightened_bounds

BISECTION_STEPS = 10  # for the attack's bisection on δ
ATTACK_STEPS = 20  # PGD steps per radius of that bisection (vanilla net: same search sizes as 40, 7% less time)
QUICK_SHARE = 0.05  # of the time limit, for the search on CROWN bounds before tightening
TIGHTEN_SHARE = 0.05  # of the remaining time, for tightening intermediate bounds
RESTART_RATIO = 0.7  # recompute the bounds once the incumbent falls below this fraction of their radius
MAIN_SHARE = 0.5  # of the time limit, for the one search below the incumbent before the checks below it
PARALLEL_AFTER = 1.0  # seconds of single-process search before a search is split over the workers
SLICE = 0.25  # seconds between checks of the restart condition


def attack_radius(
    net: ReluNet, x: np.ndarray, label: int, targets: Sequence[int], low: float, high: float,
    start: np.ndarray | None = None, deadline: float = np.inf,
) -> np.ndarray | None:
    """The closest adversarial point PGD finds by bisection on δ in [low, high], or None if none at `high`;
    the bisection stops early at `deadline` (time.monotonic())."""
    best = None
    for _ in range(BISECTION_STEPS + 1):
        if time.monotonic() >= deadline:
            break
        delta = high if best is None else (low + high) / 2
        prop = robustness_spec(x, label, delta, net.n_outputs, targets)
        point, _ = pgd_falsify(net, prop, steps=ATTACK_STEPS,
                               start=None if start is None else np.clip(start, prop.lo, prop.hi), deadline=deadline)
        if point is not None:
            best, high = point, min(delta, float(np.abs(point - x).max()))
            start = point
        elif best is None:
            return None
        else:
            low = delta
    return best


def _root_bounds(net: ReluNet, x: np.ndarray, radius: float, budget: float, deadline: float) -> LayerBounds:
    """Intermediate bounds on the δ-box of `radius`: CROWN (interval bounds for the neurons it has not reached by
    `deadline`), tightened within `budget` seconds if it is positive."""
    lo, hi = linf_box(x, radius)
    bounds = crown_bounds(net, lo, hi, deadline)
    if budget > 0 and len(net.hidden_sizes) > 1:
        bounds = tightened_bounds(net, lo, hi, budget, base=bounds)
    return bounds


class _Query:
    """One minimal-distance query: its incumbent, the best lower bound proven, and the work done."""

    def __init__(self, net: ReluNet, x: np.ndarray, label: int, targets: list[int], tol: float, workers: int,
                 deadline: float):
        self.net, self.x, self.label, self.targets, self.tol, self.workers = net, x, label, targets, tol, workers
        self.lower, self.nodes, self.unstable, self.deadline = 0.0, 0, None, deadline
        witness = attack_radius(net, x, label, targets, 0.0, 1.0, deadline=deadline)
        self.incumbent = Incumbent(np.inf)
        if witness is not None:
            self.incumbent.improve(float(np.abs(witness - x).max()), witness, closest_target(net, witness, label,
                                                                                          targets))

    def shrink(self, point: np.ndarray) -> np.ndarray:
        """PGD bisection restarted from a new witness, between the proven lower bound and its distance."""
        found = attack_radius(self.net, self.x, self.label, self.targets, self.lower,
                              float(np.abs(point - self.x).max()), start=point, deadline=self.deadline)
        return point if found is None else found

    def solve(self) -> None:
        """Search until the interval is tol-tight or the deadline passes: first one search below the incumbent,
        then, if it did not finish in its share of the time, complete checks at radii between the two ends."""
        start, deadline = time.monotonic(), self.deadline
        if not self._search_below_incumbent(start + MAIN_SHARE * (deadline - start), deadline):
            self._raise_lower(deadline)

    def _search_below_incumbent(self, deadline: float, hard_deadline: float) -> bool:
        """The one search on bounds at the incumbent's radius, re-bounded as the incumbent falls and tightened
        after a quick start; True when it closed every node."""
        start = time.monotonic()
        quick_deadline = start + QUICK_SHARE * (hard_deadline - start)
        radius = self._radius()
        bounds = _root_bounds(self.net, self.x, radius, 0.0, self.deadline)
        self.unstable = count_unstable(bounds)
        search = DeltaSearch(self.net, self.x, self.label, self.targets, self.incumbent, radius, bounds, self.tol)
        tightened = False
        while not self._drive(search, min(deadline, time.monotonic() + SLICE), deadline, start):
            now = time.monotonic()
            if now >= deadline:
                return False
            shrunk = self._radius() < RESTART_RATIO * search.radius
            if shrunk or (not tightened and now >= quick_deadline):
                tightened = True
                radius = self._radius()
                bounds = _root_bounds(self.net, self.x, radius, TIGHTEN_SHARE * (hard_deadline - now), hard_deadline)
                self.unstable = count_unstable(bounds)
                search.rebound(bounds, radius)
        return True

    def _raise_lower(self, deadline: float) -> None:
        """Bisection between the proven lower bound and the radius last left undecided: each check is a search
        whose bounds are computed on its own (smaller) box, which is what makes it easier than the one above."""
        undecided = self.incumbent.upper - self.tol
        while time.monotonic() < deadline and self.incumbent.upper - self.lower > self.tol * (1 + 1e-9):
            radius = (self.lower + min(undecided, self.incumbent.upper - self.tol)) / 2
            if radius <= self.lower:
                return
            trial = Incumbent(min(radius + self.tol, self.incumbent.upper))  # prunes at ρ = radius
            bounds = _root_bounds(self.net, self.x, radius, 0.0, self.deadline)
            search = DeltaSearch(self.net, self.x, self.label, self.targets, trial, radius, bounds, self.tol)
            share = (deadline - time.monotonic()) / 2
            began = time.monotonic()
            while not self._drive(search, min(began + share, time.monotonic() + SLICE), began + share, began):
                if time.monotonic() >= began + share:
                    undecided = radius
                    break
            self.incumbent.improve(trial.upper, trial.witness, trial.target)

    def _drive(self, search: DeltaSearch, slice_end: float, stage_end: float, began: float) -> bool:
        """Run `search` until `slice_end`, or, once it has run PARALLEL_AFTER seconds since `began`, in forked
        workers until `stage_end` (the open nodes go with them); record its lower bound. True when every node
        is closed."""
        if self.workers > 1 and time.monotonic() - began >= PARALLEL_AFTER:
            finished, lower, nodes = run_in_parallel(search, stage_end, self.shrink, self.workers)
            search.nodes += nodes
        else:
            nodes_before = search.nodes
            finished = search.run(slice_end, self.shrink)
            lower = search.lower()
            nodes = search.nodes - nodes_before
        self.lower, self.nodes = max(self.lower, lower), self.nodes + nodes
        return finished

    def _radius(self) -> float:
        """The radius of the intermediate bounds: the incumbent distance (1 while there is none)."""
        upper = self.incumbent.upper
        return min(1.0, upper) if np.isfinite(upper) else 1.0


@single_threaded_blas
def native_min_linf_distance(
    net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float, tol: float, workers: int = 1
) -> DistanceResult:
    """See `advgap.verify.api.min_linf_distance`; x and the classes are already validated."""
    start = time.monotonic()
    targets = [t for t in range(net.n_outputs) if t != label] if target is None else [target]
    logits = net.forward(x)
    if logits[targets].max() >= logits[label]:
        hit = closest_target(net, x, label, targets)
        return DistanceResult(0.0, 0.0, DistanceStatus.EXACT, time.monotonic() - start, ENGINE, x.copy(), hit,
                              "the image itself is adversarial")
    query = _Query(net, x, label, targets, tol, workers, start + timeout)
    query.solve()
    inc = query.incumbent
    lower = min(query.lower, inc.upper)
    exact = inc.upper - lower <= tol * (1 + 1e-9) if np.isfinite(inc.upper) else lower >= 1.0
    seconds = time.monotonic() - start
    status = DistanceStatus.EXACT if exact else DistanceStatus.TIMEOUT if seconds >= timeout else DistanceStatus.BOUNDS
    detail = f"bab ({query.nodes} nodes, {query.unstable} unstable ReLUs at the search radius)"
    return DistanceResult(lower, inc.upper, status, seconds, ENGINE, inc.witness, inc.target, detail,
                          unstable=query.unstable)
