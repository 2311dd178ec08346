"""The native engine's property check: cheap before expensive, every counterexample replayed.

Order of work for a property (input box + disjunction of output terms): a numpy PGD attack (a replayed point is a
proven counterexample); CROWN bounds, computed once, refute terms outright; a stronger attack on the terms still
open (both attacks skipped with `attack=False`); then, for nets with few inputs and many unstable neurons, branch
and bound over sub-boxes of the input (`advgap.verify.input_split`, all open terms together); otherwise, or if that
gives up, branch and bound over ReLU splits (single-row terms, any depth) or a HiGHS MILP (multi-row terms) per open
term. On nets with more than one hidden layer those searches first get `QUICK_SHARE` of the time (at most
`QUICK_MAX_S`) on CROWN's bounds; terms still open then go through rounds of tightening the intermediate bounds
further (α-CROWN, then MILP per unstable neuron: `advgap.verify.tighten`) and searching again, each round twice as
long as the one before (a tightening never more than `TIGHTEN_SHARE` of the time left), so that a property easy on
tightened bounds is answered early whatever the time limit, and the last round searches until the limit.

Soundness and tolerances: bounds are computed in float64 and a term counts as refuted only when its bound clears
`SOUNDNESS_MARGIN` (1e-7 in logit units); HiGHS decides leaf LPs and MILPs with its primal feasibility tolerance
1e-7 and MIP feasibility tolerance 1e-6. A ROBUST verdict is therefore a proof that no point of the box gives the
target a logit more than ~1e-6 above the label's logit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from advgap.errors import SpecError
from advgap.verify.bab import SOUNDNESS_MARGIN, BabStatus, TermBab
from advgap.verify.bounds import LayerBounds, backward_lower, crown_bounds
from advgap.verify.falsify import pgd_falsify
from advgap.verify.input_split import input_split_search, suits_input_split
from advgap.verify.milp import NetworkMilp
from advgap.verify.network import ReluNet
from advgap.verify.parallel import map_until
from advgap.verify.result import CheckResult, Verdict
from advgap.verify.spec import Property, Term
from advgap.verify.tighten import tightened_bounds

ENGINE = "native"
QUICK_SHARE = 0.05  # of the time limit, for branch and bound on CROWN's bounds before tightening them ...
QUICK_MAX_S = 1.0  # ... but no more than this: the rounds after it double, so the time to an answer does not grow
# with the time limit
TIGHTEN_SHARE = 0.3  # of the time left then, at most, for one round of tightening (`advgap.verify.tighten`)
FIRST_ROUND_S = 0.1  # seconds of the first round of tightening at least
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


def term_margins(net: ReluNet, prop: Property, bounds: LayerBounds) -> np.ndarray:
    """Per term, CROWN's best row margin: > SOUNDNESS_MARGIN proves the term cannot hold on the box."""
    last = len(net.weights) - 1
    return np.array([(backward_lower(net, bounds, t.A, last, prop.lo, prop.hi) - t.b).max() for t in prop.terms])


def _decide_term(
    net: ReluNet, prop: Property, term: Term, bounds: LayerBounds, deadline: float
) -> tuple[Verdict, np.ndarray | None, str]:
    """Complete decision of one term on the box by branch and bound (one row) or MILP (several rows)."""
    if term.A.shape[0] == 1:
        outcome = TermBab(net, term, prop.lo, prop.hi, bounds).run(deadline)
        verdict = {
            BabStatus.ROBUST: Verdict.ROBUST,
            BabStatus.FOUND: Verdict.COUNTEREXAMPLE,
            BabStatus.TIMEOUT: Verdict.TIMEOUT,
            BabStatus.UNKNOWN: Verdict.UNKNOWN,
        }[outcome.status]
        return verdict, outcome.point, f"bab ({outcome.nodes} nodes, {outcome.lps} LPs)"
    outcome = NetworkMilp(net, bounds, prop.lo, prop.hi, term.A).min_violation(
        term, time_limit=deadline - time.monotonic()
    )
    if outcome.point is not None and outcome.value <= 0:
        return Verdict.COUNTEREXAMPLE, outcome.point, "milp"
    if outcome.bound > SOUNDNESS_MARGIN:
        return Verdict.ROBUST, None, "milp"
    return (Verdict.TIMEOUT if outcome.timed_out else Verdict.UNKNOWN), None, "milp"


def replayed_term(net: ReluNet, prop: Property, point: np.ndarray | None) -> int | None:
    """Index of the term the point satisfies, replayed in float64 inside the box, or None."""
    found = None if point is None else prop.replay(net.forward, point)
    return None if found is None else found[1]


def _decide_terms(net: ReluNet, prop: Property, terms: list[int], bounds: LayerBounds, deadline: float,
                  unknown: list[str], workers: int) -> tuple[tuple[np.ndarray, int] | None, list[int], str]:
    """Decide `terms` until `deadline`, on `workers` processes: a replayed counterexample (point, index of the term
    it satisfies) if one is found, the terms left undecided and the last search's detail; terms whose search ended
    UNKNOWN are noted in `unknown`."""

    def decide(i: int) -> tuple[Verdict, np.ndarray | None, str, int | None]:
        """The term's verdict, point and detail, and the term a counterexample satisfies once replayed."""
        verdict, point, detail = _decide_term(net, prop, prop.terms[terms[i]], bounds, deadline)
        hit = replayed_term(net, prop, point) if verdict is Verdict.COUNTEREXAMPLE else None
        return verdict, point, detail, hit

    outcomes = map_until(len(terms), decide, deadline, workers, lambda outcome: outcome[3] is not None)
    left, detail = [], "no search ran"
    for i, index in enumerate(terms):
        if i not in outcomes:
            left.append(index)
            continue
        verdict, point, detail, hit = outcomes[i]
        if verdict is Verdict.COUNTEREXAMPLE:
            if hit is not None:
                return (point, hit), left, detail
            unknown.append(f"term {index}: solver point failed the float64 replay")
        elif verdict is Verdict.TIMEOUT:
            left.append(index)
        elif verdict is Verdict.UNKNOWN:
            unknown.append(f"term {index}: {detail}")
    return None, left, detail


@single_threaded_blas
def check_property(net: ReluNet, prop: Property, timeout: float = 60.0, seed: int = 0, *,
                   attack: bool = True, workers: int = 1) -> CheckResult:
    """Decide whether some x in the property's box satisfies one of its terms.

    Returns ROBUST (proven: no such x), COUNTEREXAMPLE (with a point replayed in float64 and the term index),
    TIMEOUT when `timeout` seconds (wall clock) run out, or UNKNOWN when a solver claim failed the replay.

    Terms left open by the attacks and the root bounds are decided by input splitting (`input_split_search`,
    all open terms together) when the net has at most 16 inputs and the root box more than 16 unstable neurons
    (`suits_input_split`), else per term by ReLU branch and bound or MILP, on tightened intermediate bounds for
    terms a quick search did not settle (module docstring). Should input splitting give up (a sub-box too small
    to split), the per-term searches run in the time left.

    `attack=False` skips the two PGD attacks, for callers whose own attacks already failed on the box: the
    searches are complete and replay what they find, so only the time to a counterexample can change. With
    `workers` > 1 the per-term searches run on that many forked processes (`advgap.verify.parallel.map_until`).
    """
    start = time.monotonic()
    deadline = start + timeout

    def result(verdict: Verdict, detail: str, point: np.ndarray | None = None, term: int | None = None) -> CheckResult:
        return CheckResult(verdict, time.monotonic() - start, ENGINE, point, term, detail)

    if prop.lo.shape[0] != net.n_inputs:
        raise SpecError(f"property has {prop.lo.shape[0]} inputs, the network {net.n_inputs}")
    if attack:
        point, _ = pgd_falsify(net, prop, seed=seed, deadline=deadline)
        if (hit := replayed_term(net, prop, point)) is not None:
            return result(Verdict.COUNTEREXAMPLE, "attack", point, hit)
    bounds = crown_bounds(net, prop.lo, prop.hi, deadline)
    margins = term_margins(net, prop, bounds)
    open_terms = [int(k) for k in np.argsort(margins) if margins[k] <= SOUNDNESS_MARGIN]
    if open_terms and attack:
        focus = Property(prop.lo, prop.hi, tuple(prop.terms[k] for k in open_terms))
        point, local = pgd_falsify(net, focus, steps=100, restarts=6, seed=seed + 1, deadline=deadline)
        if local is not None and (hit := replayed_term(net, prop, point)) is not None:
            return result(Verdict.COUNTEREXAMPLE, "attack on open terms", point, hit)
    if open_terms and suits_input_split(net, bounds):
        focus = Property(prop.lo, prop.hi, tuple(prop.terms[k] for k in open_terms))
        split = input_split_search(net, focus, deadline)
        if split.verdict is Verdict.COUNTEREXAMPLE and (hit := replayed_term(net, prop, split.point)) is not None:
            return result(Verdict.COUNTEREXAMPLE, split.detail, split.point, hit)
        if split.verdict is Verdict.ROBUST:
            return result(Verdict.ROBUST, f"bounds + {split.detail}")
        if split.verdict is Verdict.TIMEOUT:
            return result(Verdict.TIMEOUT, split.detail)
    # deeper nets: a quick search on CROWN's bounds first; terms it leaves open get tightened bounds
    deep = len(net.hidden_sizes) > 1
    unknown: list[str] = []
    quick = min(QUICK_SHARE * timeout, QUICK_MAX_S)
    quick_end = min(time.monotonic() + quick, deadline) if deep else deadline
    found, pending, detail = _decide_terms(net, prop, open_terms, bounds, quick_end, unknown, workers)
    budget = max(quick, FIRST_ROUND_S)
    while found is None and pending and deep and time.monotonic() < deadline:
        # rounds of tightening then search, each twice the last: easy properties stop early, hard ones get time
        bounds = tightened_bounds(net, prop.lo, prop.hi, min(budget, TIGHTEN_SHARE * (deadline - time.monotonic())),
                                  base=bounds)
        margins = term_margins(net, prop, bounds)
        pending = [k for k in pending if margins[k] <= SOUNDNESS_MARGIN]
        round_end = time.monotonic() + 2 * budget
        if round_end + 4 * budget > deadline:  # the next round would not fit: search until the limit
            round_end = deadline
        found, pending, detail = _decide_terms(net, prop, pending, bounds, round_end, unknown, workers)
        budget *= 2
    if found is not None:
        point, hit = found
        return result(Verdict.COUNTEREXAMPLE, detail, point, hit)
    if pending:
        return result(Verdict.TIMEOUT, f"{len(pending)} of {len(open_terms)} terms open at the time limit ({detail})")
    if unknown:
        return result(Verdict.UNKNOWN, "; ".join(unknown))
    return result(Verdict.ROBUST, f"bounds + {len(open_terms)} complete searches")
