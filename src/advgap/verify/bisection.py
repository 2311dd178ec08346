"""The study's minimal-distance method: binary search on δ ∈ [0, 1] with complete robustness queries.

Any engine that answers "is the δ-box robust?" plugs in as `check(delta, remaining_seconds) -> CheckResult`.
The interval stays certified throughout: `lower` is the largest δ proven ROBUST (0 before any proof), `upper` the
L∞ distance of the closest replayed counterexample found. An UNKNOWN or TIMEOUT answer ends the search with the
interval reached so far.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from advgap.errors import SolverError, SpecError
from advgap.verify.result import CheckResult, DistanceResult, DistanceStatus, Verdict

log = logging.getLogger(__name__)


def min_distance_by_bisection(
    check: Callable[[float, float], CheckResult],
    x: np.ndarray,
    *,
    tol: float,
    timeout: float,
    engine: str,
    term_targets: Sequence[int] | None = None,
    upper_hint: float | None = None,
) -> DistanceResult:
    """Bisect δ until upper - lower <= tol, `timeout` seconds in all.

    The first query is at `upper_hint` if given (e.g. an attack's δ), else at δ = 1; then at the midpoint of the
    interval. A counterexample's own distance ‖witness - x‖∞ (at most the δ queried) becomes the upper bound.
    `term_targets[k]` is the class that the check's term k stands for (reported as the result's target).
    Robust at δ = 1 means no adversarial point in [0, 1]^n: lower 1, upper inf, status EXACT.
    """
    if not tol > 0:
        raise SpecError(f"tolerance must be positive, got {tol}")
    if upper_hint is not None and not 0.0 < upper_hint <= 1.0:
        raise SpecError(f"upper_hint must lie in (0, 1], got {upper_hint}")
    x = np.asarray(x, dtype=np.float64)
    start = time.perf_counter()
    deadline = start + timeout
    lower, upper = 0.0, float("inf")
    witness: np.ndarray | None = None
    target: int | None = None
    status: DistanceStatus | None = None
    stop = ""
    queries = 0
    delta = upper_hint if upper_hint is not None else 1.0
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            status, stop = DistanceStatus.TIMEOUT, f"time limit {timeout:g} s reached"
            break
        result = check(delta, remaining)
        queries += 1
        log.debug("δ=%.6f: %s (%.2f s)", delta, result.verdict.value, result.seconds)
        if result.verdict is Verdict.ROBUST:
            lower = delta
        elif result.verdict is Verdict.COUNTEREXAMPLE:
            assert result.counterexample is not None
            distance = min(delta, float(np.max(np.abs(result.counterexample - x))))
            if distance <= lower:
                raise SolverError(f"{engine}: counterexample at distance {distance} but robust at δ={lower}")
            upper, witness = distance, result.counterexample
            target = None if term_targets is None or result.term is None else term_targets[result.term]
        else:
            timed_out = result.verdict is Verdict.TIMEOUT
            status = DistanceStatus.TIMEOUT if timed_out else DistanceStatus.BOUNDS
            stop = f"{result.verdict.value} at δ={delta:.6f}: {result.detail}"
            break
        if lower >= 1.0:
            status, stop = DistanceStatus.EXACT, "robust on all of [0, 1]^n"
            break
        if upper - lower <= tol:
            status = DistanceStatus.EXACT
            break
        delta = (lower + upper) / 2 if np.isfinite(upper) else 1.0
    detail = f"bisection, {queries} queries" + (f"; {stop}" if stop else "")
    return DistanceResult(lower, upper, status, time.perf_counter() - start, engine, witness, target, detail)
