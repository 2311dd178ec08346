"""Compare two engines' certified minimal-distance intervals."""

from __future__ import annotations

from advgap.verify.result import DistanceResult


def cross_check(a: DistanceResult, b: DistanceResult, tol: float) -> str | None:
    """None when the certified intervals [lower, upper] of `a` and `b` overlap up to `tol`, else why not.

    Each interval contains the true distance if its engine is sound, so disjoint intervals mean one is wrong.
    """
    for first, second in ((a, b), (b, a)):
        if first.lower > second.upper + tol:
            return (
                f"{first.engine} proves distance >= {first.lower:.6f} but {second.engine} has a counterexample at "
                f"{second.upper:.6f}"
            )
    return None
