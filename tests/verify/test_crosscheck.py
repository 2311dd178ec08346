"""Consistency of two engines' certified distance intervals."""

import math

from advgap.verify.crosscheck import cross_check
from advgap.verify.result import DistanceResult, DistanceStatus


def interval(lower: float, upper: float, engine: str) -> DistanceResult:
    return DistanceResult(lower, upper, DistanceStatus.EXACT, 0.0, engine)


def test_overlapping_intervals_agree():
    assert cross_check(interval(0.10, 0.101, "a"), interval(0.1005, 0.1012, "b"), 1e-3) is None


def test_touching_within_tol_agree():
    assert cross_check(interval(0.100, 0.1005, "a"), interval(0.1012, 0.1020, "b"), 1e-3) is None


def test_disjoint_intervals_name_both_engines():
    message = cross_check(interval(0.10, 0.101, "native"), interval(0.20, 0.201, "marabou"), 1e-3)
    assert message is not None and "marabou proves distance >= 0.200000" in message and "native" in message


def test_robust_everywhere_against_a_counterexample_disagrees():
    assert cross_check(interval(1.0, math.inf, "a"), interval(0.3, 0.3005, "b"), 1e-3) is not None
    assert cross_check(interval(1.0, math.inf, "a"), interval(0.9995, math.inf, "b"), 1e-3) is None
