"""The exact engines behind one small interface; `get_engine(name)` is the only place that knows their names.

- "native": attack, CROWN/α-CROWN bounds, β-CROWN-style branch and bound, HiGHS (`advgap.verify.native`,
  `advgap.verify.distance`).
- "marabou": the study's method, complete Marabou queries and bisection on δ (optional extra `advgap[marabou]`).

A new engine implements `Engine` and is added to `_ENGINES`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from advgap.errors import SpecError
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult
from advgap.verify.spec import Property


class Engine(Protocol):
    """What the API, the CLI and `advgap run` ask of an exact engine."""

    name: str

    def require(self) -> None:
        """Raise an AdvgapError naming what to install when the engine cannot run here."""

    def check_property(self, net: ReluNet, prop: Property, timeout: float, attack: bool = True,
                       workers: int = 1) -> CheckResult:
        """Decide whether some x in the property's box satisfies one of its terms; `attack=False` skips the
        engine's own falsification attacks, if it has any (the verdict stays complete and replayed); `workers`:
        processes it may use."""

    def min_linf_distance(self, net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float,
                          tol: float, workers: int) -> DistanceResult:
        """The certified minimal L∞ distance to an adversarial point (`advgap.adversarial`)."""


class NativeEngine:
    name = "native"

    def require(self) -> None:
        """The native engine needs nothing beyond advgap's own dependencies."""

    def check_property(self, net: ReluNet, prop: Property, timeout: float, attack: bool = True,
                       workers: int = 1) -> CheckResult:
        from advgap.verify.native import check_property

        return check_property(net, prop, timeout, attack=attack, workers=workers)

    def min_linf_distance(self, net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float,
                          tol: float, workers: int) -> DistanceResult:
        from advgap.verify.distance import native_min_linf_distance

        return native_min_linf_distance(net, x, label, target, timeout, tol, workers)


class MarabouEngine:
    name = "marabou"

    def require(self) -> None:
        from advgap.verify.marabou import require_maraboupy

        require_maraboupy()

    def check_property(self, net: ReluNet, prop: Property, timeout: float, attack: bool = True,
                       workers: int = 1) -> CheckResult:
        """Marabou runs no attack of its own and one query at a time; `attack` and `workers` are not used."""
        from advgap.verify.marabou import marabou_check_property

        return marabou_check_property(net, prop, timeout)

    def min_linf_distance(self, net: ReluNet, x: np.ndarray, label: int, target: int | None, timeout: float,
                          tol: float, workers: int) -> DistanceResult:
        """Marabou's bisection runs its queries one after the other; `workers` is not used."""
        from advgap.verify.marabou import marabou_min_linf_distance

        return marabou_min_linf_distance(net, x, label, target, timeout, tol)


_ENGINES: dict[str, Engine] = {engine.name: engine for engine in (NativeEngine(), MarabouEngine())}
ENGINE_NAMES = tuple(_ENGINES)


def get_engine(name: str) -> Engine:
    """The engine called `name`; SpecError listing the known ones otherwise."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise SpecError(f"unknown engine {name!r} (choose from {', '.join(ENGINE_NAMES)})") from None
