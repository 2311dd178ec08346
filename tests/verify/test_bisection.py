"""Bisection on δ with fake robustness checks whose threshold is known."""

import time

import numpy as np
import pytest

from advgap.errors import SolverError, SpecError
from advgap.verify.bisection import min_distance_by_bisection
from advgap.verify.result import CheckResult, DistanceStatus, Verdict

X = np.full(4, 0.5)


def threshold_check(theta: float, calls: list[float] | None = None, term: int = 0):
    """Robust for δ < theta, else a counterexample at distance exactly δ (x + δ on the first coordinate)."""

    def check(delta: float, remaining: float) -> CheckResult:
        assert remaining > 0
        if calls is not None:
            calls.append(delta)
        if delta < theta:
            return CheckResult(Verdict.ROBUST, 0.0, "fake")
        point = X.copy()
        point[0] += delta
        return CheckResult(Verdict.COUNTEREXAMPLE, 0.0, "fake", point, term)

    return check


@pytest.mark.parametrize("theta", [0.001, 0.0371, 0.5, 0.999])
def test_interval_brackets_threshold_within_tol(theta):
    result = min_distance_by_bisection(threshold_check(theta), X, tol=1e-3, timeout=10, engine="fake")
    assert result.status is DistanceStatus.EXACT
    assert result.lower < theta <= result.upper
    assert result.upper - result.lower <= 1e-3
    assert np.max(np.abs(result.witness - X)) == pytest.approx(result.upper)


def test_upper_hint_is_queried_first_and_saves_queries():
    plain, hinted = [], []
    min_distance_by_bisection(threshold_check(0.2, plain), X, tol=1e-3, timeout=10, engine="fake")
    result = min_distance_by_bisection(
        threshold_check(0.2, hinted), X, tol=1e-3, timeout=10, engine="fake", upper_hint=0.21
    )
    assert hinted[0] == 0.21
    assert len(hinted) < len(plain)
    assert result.lower < 0.2 <= result.upper


def test_robust_hint_then_continues_upwards():
    calls = []
    result = min_distance_by_bisection(
        threshold_check(0.6, calls), X, tol=1e-3, timeout=10, engine="fake", upper_hint=0.3
    )
    assert calls[:2] == [0.3, 1.0]
    assert result.lower < 0.6 <= result.upper


def test_robust_everywhere_gives_lower_one_upper_inf():
    result = min_distance_by_bisection(threshold_check(2.0), X, tol=1e-3, timeout=10, engine="fake")
    assert (result.lower, result.upper, result.status) == (1.0, np.inf, DistanceStatus.EXACT)
    assert result.witness is None


def test_witness_closer_than_delta_tightens_upper():
    def check(delta: float, remaining: float) -> CheckResult:
        if delta < 0.1:
            return CheckResult(Verdict.ROBUST, 0.0, "fake")
        point = X.copy()
        point[1] += 0.1
        return CheckResult(Verdict.COUNTEREXAMPLE, 0.0, "fake", point, 0)

    calls = []
    result = min_distance_by_bisection(
        lambda d, r: (calls.append(d), check(d, r))[1], X, tol=1e-3, timeout=10, engine="fake"
    )
    assert result.upper == pytest.approx(0.1)
    assert all(d <= 0.1 + 1e-12 for d in calls[1:])


def test_target_comes_from_term_targets():
    result = min_distance_by_bisection(
        threshold_check(0.3, term=1), X, tol=1e-3, timeout=10, engine="fake", term_targets=[4, 7]
    )
    assert result.target == 7


@pytest.mark.parametrize(
    "verdict,status", [(Verdict.UNKNOWN, DistanceStatus.BOUNDS), (Verdict.TIMEOUT, DistanceStatus.TIMEOUT)]
)
def test_unanswered_query_stops_with_interval_so_far(verdict, status):
    inner = threshold_check(0.3)
    calls = []

    def check(delta: float, remaining: float) -> CheckResult:
        calls.append(delta)
        if len(calls) == 4:
            return CheckResult(verdict, 0.0, "fake", detail="gave up")
        return inner(delta, remaining)

    result = min_distance_by_bisection(check, X, tol=1e-3, timeout=10, engine="fake")
    assert len(calls) == 4
    assert result.status is status
    assert (result.lower, result.upper) == (0.25, 0.5)  # 1 cex, 0.5 cex, 0.25 robust, then 0.375 unanswered
    assert "gave up" in result.detail


def test_overall_timeout_is_honoured():
    inner = threshold_check(0.3)

    def slow(delta: float, remaining: float) -> CheckResult:
        time.sleep(min(0.05, remaining))
        return inner(delta, remaining)

    start = time.perf_counter()
    result = min_distance_by_bisection(slow, X, tol=1e-6, timeout=0.12, engine="fake")
    assert time.perf_counter() - start < 0.5
    assert result.status is DistanceStatus.TIMEOUT
    assert result.lower < 0.3 <= result.upper


def test_inconsistent_engine_is_an_error():
    def check(delta: float, remaining: float) -> CheckResult:
        if delta < 0.6:
            return CheckResult(Verdict.ROBUST, 0.0, "fake")
        point = X.copy()
        point[0] += 0.1 if delta < 1 else delta  # a counterexample closer than a proven robust radius
        return CheckResult(Verdict.COUNTEREXAMPLE, 0.0, "fake", point, 0)

    with pytest.raises(SolverError, match="counterexample at distance"):
        min_distance_by_bisection(check, X, tol=1e-3, timeout=10, engine="fake")


@pytest.mark.parametrize("kwargs", [{"tol": 0.0}, {"tol": 1e-3, "upper_hint": 0.0}, {"tol": 1e-3, "upper_hint": 1.5}])
def test_bad_settings_are_spec_errors(kwargs):
    with pytest.raises(SpecError):
        min_distance_by_bisection(threshold_check(0.3), X, timeout=10, engine="fake", **kwargs)
