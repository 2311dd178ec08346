"""Verdicts and results of the verification layer: frozen dataclasses and enums, never loose strings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class Verdict(Enum):
    """Answer to one property. ROBUST and COUNTEREXAMPLE are proven; the others are not answers."""

    ROBUST = "robust"  # proven: no point of the box satisfies any term
    COUNTEREXAMPLE = "counterexample"  # a point that replays through the net in float64 and satisfies a term
    UNKNOWN = "unknown"  # the engine gave up (limit reached, numerical trouble) without a proof
    TIMEOUT = "timeout"  # the time limit ran out


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one property check. `counterexample` is set iff verdict is COUNTEREXAMPLE and was replayed."""

    verdict: Verdict
    seconds: float
    engine: str
    counterexample: np.ndarray | None = None
    term: int | None = None  # index of the property term the counterexample satisfies
    detail: str = ""  # how it was decided, e.g. 'attack', 'bounds', 'bab (812 nodes)', 'milp'


class DistanceStatus(Enum):
    """How tight a minimal-distance result is."""

    EXACT = "exact"  # upper - lower <= tol: both ends proven
    BOUNDS = "bounds"  # a proven interval wider than tol (engine limit reached)
    TIMEOUT = "timeout"  # time ran out; [lower, upper] is still a proven interval


@dataclass(frozen=True)
class DistanceResult:
    """Minimal L∞ distance to an adversarial point, certified in [lower, upper].

    `lower`: proven — no adversarial point within L∞ distance < lower (robust at every δ < lower).
    `upper`: achieved — `witness` lies at L∞ distance `upper` (<= upper, in [0,1]^n) and replays as adversarial,
    reaching `target`. When no adversarial point exists at δ = 1, upper is inf and witness None.
    """

    lower: float
    upper: float
    status: DistanceStatus
    seconds: float
    engine: str
    witness: np.ndarray | None = None
    target: int | None = None
    detail: str = ""
    unstable: int | None = None  # native engine: unstable ReLUs left at the search radius after tightening
