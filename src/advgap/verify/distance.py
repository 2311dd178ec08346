"""The native engine's minimal L∞ distance: a certified interval [lower, upper] around the closest adversary.

Search: `upper` from PGD by bisection on δ, `lower` from CROWN by bisection on δ (both cheap), then complete
checks (`check_property`) at δ = upper − tol. A ROBUST answer raises `lower` to δ; a counterexample found there
is shrunk by PGD restarted from it on smaller boxes and lowers `upper`; a check that runs out of its share of the
time marks δ unresolved, and the next check bisects below it to raise `lower` instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from advgap.verify.bab import SOUNDNESS_MARGIN
from advgap.verify.bounds import crown_bounds
from advgap.verify.falsify import pgd_falsify
from advgap.verify.native import ENGINE, check_property, single_threaded_blas, term_margins
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceResult, DistanceStatus, Verdict
from advgap.verify.spec import robustness_spec

BISECTION_STEPS = 10  # for the cheap attack and bound bisections


def _attack_radius(
    net: ReluNet, x: np.ndarray, label: int, targets: Sequence[int], low: float, high: float,
    start: np.ndarray | None = None,
) -> np.ndarray | None:
    """The closest adversarial point PGD finds by bisection on δ in [low, high], or None if none at `high`."""
    best = None
    for _ in range(BISECTION_STEPS + 1):
        delta = high if best is None else (low + high) / 2
        prop = robustness_spec(x, label, delta, net.n_outputs, targets)
        point, _ = pgd_falsify(net, prop, steps=40, start=None if start is None else np.clip(start, prop.lo, prop.hi))
        if point is not None:
            best, high = point, min(delta, float(np.abs(point - x).max()))
            start = point
        elif best is None:
            return None
        else:
            low = delta
    return best


def _certified_radius(net: ReluNet, x: np.ndarray, label: int, targets: Sequence[int], high: float) -> float:
    """The largest δ in [0, high] found by bisection at which CROWN alone proves robustness (0 if none)."""
    low = 0.0
    for _ in range(BISECTION_STEPS):
        delta = (low + high) / 2
        prop = robustness_spec(x, label, delta, net.n_outputs, targets)
        if term_margins(net, prop, crown_bounds(net, prop.lo, prop.hi)).min() > SOUNDNESS_MARGIN:
            low = delta
        else:
            high = delta
    return low


@single_threaded_blas
def native_min_linf_distance(
    net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float, tol: float
) -> DistanceResult:
    """See `advgap.verify.api.min_linf_distance`; x and the classes are already validated."""
    start = time.monotonic()
    targets = [t for t in range(net.n_outputs) if t != label] if target is None else [target]

    def done(lower: float, upper: float, witness: np.ndarray | None, status: DistanceStatus, detail: str):
        hit = None
        if witness is not None:
            logits = net.forward(witness)
            hit = max(targets, key=lambda t: logits[t] - logits[label])
        return DistanceResult(lower, upper, status, time.monotonic() - start, ENGINE, witness, hit, detail)

    logits = net.forward(x)
    if logits[targets].max() >= logits[label]:
        return done(0.0, 0.0, x.copy(), DistanceStatus.EXACT, "the image itself is adversarial")
    witness = _attack_radius(net, x, label, targets, 0.0, 1.0)
    upper = np.inf if witness is None else float(np.abs(witness - x).max())
    lower = _certified_radius(net, x, label, targets, min(upper, 1.0))
    unresolved = np.inf  # smallest δ whose check ran out of time
    width = tol * (1 + 1e-9)  # absorbs rounding in upper - lower
    checks = 0
    while (upper - lower > width) if np.isfinite(upper) else lower < 1.0:
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0 or unresolved - lower <= width:
            status = DistanceStatus.TIMEOUT if remaining <= 0 else DistanceStatus.BOUNDS
            return done(lower, upper, witness, status, f"{checks} checks")
        if np.isfinite(unresolved):
            delta = (lower + unresolved) / 2
        else:
            delta = upper - tol if np.isfinite(upper) else 1.0
        outcome = check_property(net, robustness_spec(x, label, delta, net.n_outputs, targets), remaining / 2)
        checks += 1
        if outcome.verdict is Verdict.ROBUST:
            lower = delta
        elif outcome.verdict is Verdict.COUNTEREXAMPLE:
            found = outcome.counterexample
            shrunk = _attack_radius(net, x, label, targets, lower, float(np.abs(found - x).max()), start=found)
            witness = found if shrunk is None else shrunk
            upper = float(np.abs(witness - x).max())
        else:
            unresolved = delta
    return done(lower, upper, witness, DistanceStatus.EXACT, f"{checks} checks")
