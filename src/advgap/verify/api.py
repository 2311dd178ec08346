"""The verification layer's entry points: check a property, check robustness, find the minimal L∞ distance.

Cheap before expensive: a numpy PGD attack first (a replayed point is a proven counterexample), then CROWN bounds
per property term, then, only for terms still open, branch and bound (single-row terms, any depth)
or a HiGHS MILP (multi-row terms). Every counterexample is replayed in float64 through the net before it is reported.

Soundness and tolerances: bounds are computed in float64 and a term counts as refuted only when its bound clears
`SOUNDNESS_MARGIN` (1e-7 in logit units); HiGHS decides leaf LPs and MILPs with its primal feasibility tolerance
1e-7 and MIP feasibility tolerance 1e-6. A ROBUST verdict is therefore a proof that no point of the box gives the
target a logit more than ~1e-6 above the label's logit. Through the binary search this moves `lower` of a
minimal distance by at most 1e-6 / (the net's local Lipschitz constant), far below the default tolerance 1e-3.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from advgap.errors import SpecError
from advgap.verify.bab import SOUNDNESS_MARGIN, BabStatus, TermBab
from advgap.verify.bounds import backward_lower, crown_bounds
from advgap.verify.falsify import pgd_falsify
from advgap.verify.milp import NetworkMilp
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult, DistanceStatus, Verdict
from advgap.verify.spec import Property, Term, robustness_spec

ENGINE = "native"
ENGINES = ("native", "marabou")
P = ParamSpec("P")
R = TypeVar("R")


def single_threaded_blas(func: Callable[P, R]) -> Callable[P, R]:
    """Run with one BLAS thread: the engine's matrices are small, and on a loaded machine OpenBLAS threads
    spinning against each other made each product ~20x slower (measured on 2 cores)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper


def _refuted_by_bounds(net: ReluNet, prop: Property, term: Term) -> tuple[bool, float]:
    """Whether CROWN proves the term impossible on the box, and the best row's margin (> 0 means proven)."""
    bounds = crown_bounds(net, prop.lo, prop.hi)
    lower = backward_lower(net, bounds, term.A, len(net.weights) - 1, prop.lo, prop.hi) - term.b
    margin = float(lower.max())
    return margin > SOUNDNESS_MARGIN, margin


def _decide_term(net: ReluNet, prop: Property, term: Term, deadline: float) -> tuple[Verdict, np.ndarray | None, str]:
    """Complete decision of one term on the box by branch and bound or MILP."""
    bounds = crown_bounds(net, prop.lo, prop.hi)
    if term.A.shape[0] == 1:
        outcome = TermBab(net, term, prop.lo, prop.hi, bounds).run(deadline)
        detail = f"bab ({outcome.nodes} nodes, {outcome.lps} LPs)"
        verdict = {
            BabStatus.ROBUST: Verdict.ROBUST,
            BabStatus.FOUND: Verdict.COUNTEREXAMPLE,
            BabStatus.TIMEOUT: Verdict.TIMEOUT,
            BabStatus.UNKNOWN: Verdict.UNKNOWN,
        }[outcome.status]
        return verdict, outcome.point, detail
    outcome = NetworkMilp(net, bounds, prop.lo, prop.hi, term.A).min_violation(
        term, time_limit=deadline - time.monotonic()
    )
    if outcome.point is not None and outcome.value <= 0:
        return Verdict.COUNTEREXAMPLE, outcome.point, "milp"
    if outcome.bound > SOUNDNESS_MARGIN:
        return Verdict.ROBUST, None, "milp"
    return (Verdict.TIMEOUT if outcome.timed_out else Verdict.UNKNOWN), None, "milp"


@single_threaded_blas
def check_property(net: ReluNet, prop: Property, timeout: float = 60.0, seed: int = 0) -> CheckResult:
    """Decide whether some x in the property's box satisfies one of its terms.

    Returns ROBUST (proven: no such x), COUNTEREXAMPLE (with a point replayed in float64 and the term index),
    TIMEOUT when `timeout` seconds (wall clock) run out, or UNKNOWN when a solver claim failed the replay.
    """
    start = time.monotonic()
    deadline = start + timeout

    def result(verdict: Verdict, detail: str, point: np.ndarray | None = None, term: int | None = None) -> CheckResult:
        return CheckResult(verdict, time.monotonic() - start, ENGINE, point, term, detail)

    if prop.lo.shape[0] != net.n_inputs:
        raise SpecError(f"property has {prop.lo.shape[0]} inputs, the network {net.n_inputs}")
    point, _ = pgd_falsify(net, prop, seed=seed)
    if point is not None and (hit := _replayed_term(net, prop, point)) is not None:
        return result(Verdict.COUNTEREXAMPLE, "attack", point, hit)
    open_terms = []
    for index, term in enumerate(prop.terms):
        refuted, margin = _refuted_by_bounds(net, prop, term)
        if not refuted:
            open_terms.append((margin, index, term))
    open_terms.sort(key=lambda item: item[0])
    unknown = []
    for _, index, term in open_terms:
        if time.monotonic() > deadline:
            return result(Verdict.TIMEOUT, "time limit before all terms were decided")
        verdict, point, detail = _decide_term(net, prop, term, deadline)
        if verdict is Verdict.COUNTEREXAMPLE:
            hit = _replayed_term(net, prop, point)
            if hit is not None:
                return result(Verdict.COUNTEREXAMPLE, detail, point, hit)
            unknown.append(f"term {index}: solver point failed the float64 replay")
        elif verdict is Verdict.TIMEOUT:
            return result(Verdict.TIMEOUT, detail)
        elif verdict is Verdict.UNKNOWN:
            unknown.append(f"term {index}: {detail}")
    if unknown:
        return result(Verdict.UNKNOWN, "; ".join(unknown))
    return result(Verdict.ROBUST, f"bounds + {len(open_terms)} complete searches")


def _replayed_term(net: ReluNet, prop: Property, point: np.ndarray | None) -> int | None:
    """Index of the term the point satisfies, replayed in float64 inside the box, or None."""
    if point is None:
        return None
    point = np.clip(point, prop.lo, prop.hi)
    return prop.violated_by(point, net.forward(point))


def _validate(net: ReluNet, x: np.ndarray, label: int, target: int | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.shape[0] != net.n_inputs:
        raise SpecError(f"image has {x.shape[0]} values, the network expects {net.n_inputs}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise SpecError("image values must be finite and lie in [0, 1]")
    if not 0 <= label < net.n_outputs:
        raise SpecError(f"label {label} is out of range for {net.n_outputs} classes")
    if target is not None and (not 0 <= target < net.n_outputs or target == label):
        raise SpecError(f"target {target} must be a class in [0, {net.n_outputs}) other than the label {label}")
    return x


def check_robust(
    net: ReluNet,
    x: np.ndarray,
    label: int,
    delta: float,
    target: int | None = None,
    timeout: float = 60.0,
    engine: str = "native",
) -> CheckResult:
    """Is there x' with ‖x' − x‖∞ <= delta, x' in [0,1]^n and logit_t(x') >= logit_label(x')?

    `target` restricts t to one class; by default every class but `label` counts. ROBUST means proven no.
    `engine` as in `min_linf_distance`.
    """
    x = _validate(net, x, label, target)
    targets = None if target is None else [target]
    prop = robustness_spec(x, label, delta, net.n_outputs, targets)
    if engine == "marabou":
        from advgap.verify.marabou import marabou_check_property

        return marabou_check_property(net, prop, timeout)
    if engine != "native":
        raise SpecError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return check_property(net, prop, timeout)


def _attack_radius(net: ReluNet, x: np.ndarray, label: int, targets: Sequence[int], tol: float) -> np.ndarray | None:
    """The closest adversarial point PGD finds by bisection on δ in [0, 1], or None if none at δ = 1."""
    best = None
    low, high = 0.0, 1.0
    while high - low > tol / 4:
        delta = high if best is None else (low + high) / 2
        point, _ = pgd_falsify(net, robustness_spec(x, label, delta, net.n_outputs, targets), steps=40)
        if point is not None:
            best, high = point, min(delta, float(np.abs(point - x).max()))
        elif best is None:
            return None
        else:
            low = delta
    return best


def min_linf_distance(
    net: ReluNet,
    x: np.ndarray,
    label: int,
    target: int | None = None,
    timeout: float = 60.0,
    tol: float = 1e-3,
    engine: str = "native",
) -> DistanceResult:
    """The minimal L∞ distance from x to a point of [0,1]^n whose logit for a target class reaches the label's.

    Args:
        net: the network; x: the image, values in [0, 1] (δ is in the same units: 1/255 is one pixel level).
        label: the true class; target: one target class, or None for the closest over all classes but `label`.
        timeout: wall-clock seconds for the whole search; tol: the certified interval's target width in δ units.
        engine: "native" (attack, bounds, branch and bound / MILP) or "marabou" (the study's method: bisection
            on δ with complete Marabou queries; needs the optional extra `advgap[marabou]`).

    Returns a DistanceResult: `lower` proven (robust for every δ < lower), `upper` achieved by `witness` (inf and
    no witness when even δ = 1 is robust), status EXACT when upper − lower <= tol.
    """
    x = _validate(net, x, label, target)
    if engine == "marabou":
        from advgap.verify.marabou import marabou_min_linf_distance

        return marabou_min_linf_distance(net, x, label, target, timeout, tol)
    if engine != "native":
        raise SpecError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    return _native_min_linf_distance(net, x, label, target, timeout, tol)


@single_threaded_blas
def _native_min_linf_distance(
    net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float, tol: float
) -> DistanceResult:
    """Attack first (PGD bisection) for `upper`, then complete robustness checks just below it; a
    counterexample found there lowers `upper` and the search bisects between the certified ends."""
    start = time.monotonic()
    targets = [t for t in range(net.n_outputs) if t != label] if target is None else [target]

    def done(lower: float, upper: float, witness: np.ndarray | None, status: DistanceStatus, detail: str):
        hit = None
        if witness is not None:
            logits = net.forward(witness)
            hit = max(targets, key=lambda t: logits[t] - logits[label])
        return DistanceResult(lower, upper, status, time.monotonic() - start, ENGINE, witness, hit, detail)

    if net.forward(x)[targets].max() >= net.forward(x)[label]:
        return done(0.0, 0.0, x.copy(), DistanceStatus.EXACT, "the image itself is adversarial")
    witness = _attack_radius(net, x, label, targets, tol)
    upper = np.inf if witness is None else float(np.abs(witness - x).max())
    lower, checks, first = 0.0, 0, True
    width = tol * (1 + 1e-9)  # absorbs rounding in upper - lower
    while (upper - lower > width) if np.isfinite(upper) else lower < 1.0:
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            return done(lower, upper, witness, DistanceStatus.TIMEOUT, f"{checks} checks")
        if not np.isfinite(upper):
            delta = 1.0
        elif first or upper - lower <= 2 * tol:
            delta = upper - tol
        else:
            delta = (lower + upper) / 2
        first = False
        outcome = check_property(net, robustness_spec(x, label, delta, net.n_outputs, targets), remaining)
        checks += 1
        if outcome.verdict is Verdict.ROBUST:
            lower = delta
        elif outcome.verdict is Verdict.COUNTEREXAMPLE:
            witness = outcome.counterexample
            upper = float(np.abs(witness - x).max())
        else:
            status = DistanceStatus.TIMEOUT if outcome.verdict is Verdict.TIMEOUT else DistanceStatus.BOUNDS
            return done(lower, upper, witness, status, f"{checks} checks; {outcome.detail}")
    return done(lower, upper, witness, DistanceStatus.EXACT, f"{checks} checks")

