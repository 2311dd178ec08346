"""The verification layer's entry points: check a property, check robustness, find the minimal L∞ distance.

Each takes `engine=`, a name known to `advgap.verify.engines` ("native" or "marabou").
"""

from __future__ import annotations

import numpy as np

from advgap.errors import SpecError
from advgap.verify.engines import get_engine
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult
from advgap.verify.spec import Property, robustness_spec

__all__ = ["check_property", "check_robust", "min_linf_distance"]


def check_property(net: ReluNet, prop: Property, timeout: float = 60.0, engine: str = "native", *,
                   attack: bool = True, workers: int = 1) -> CheckResult:
    """Is there x in the property's box whose logits satisfy one of its terms? (COUNTEREXAMPLE carries x.)

    `attack=False` skips the engine's own falsification attacks, for callers whose attacks already failed on the
    box; the search stays complete and every counterexample replayed. `workers`: processes for the per-term
    searches (the native engine; Marabou runs one query at a time).
    """
    return get_engine(engine).check_property(net, prop, timeout, attack, workers)


def _validate(net: ReluNet, x: np.ndarray, label: int, target: int | None, engine: str) -> np.ndarray:
    get_engine(engine)
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
    *,
    attack: bool = True,
) -> CheckResult:
    """Is there x' with ‖x' − x‖∞ <= delta, x' in [0,1]^n and logit_t(x') >= logit_label(x')?

    `target` restricts t to one class; by default every class but `label` counts. ROBUST means proven no;
    COUNTEREXAMPLE carries x' (replayed in float64). `engine` as in `min_linf_distance`; `attack` as in
    `check_property`.
    """
    x = _validate(net, x, label, target, engine)
    targets = None if target is None else [target]
    prop = robustness_spec(x, label, delta, net.n_outputs, targets)
    return get_engine(engine).check_property(net, prop, timeout, attack)


def min_linf_distance(
    net: ReluNet,
    x: np.ndarray,
    label: int,
    target: int | None = None,
    timeout: float = 60.0,
    tol: float = 1e-3,
    engine: str = "native",
    workers: int = 1,
) -> DistanceResult:
    """The minimal L∞ distance from x to a point of [0,1]^n whose logit for a target class reaches the label's.

    Args:
        net: the network; x: the image, values in [0, 1] (δ is in the same units: 1/255 is one pixel level).
        label: the true class; target: one target class, or None for the closest over all classes but `label`.
        timeout: wall-clock seconds for the whole search; tol: the certified interval's target width in δ units.
        engine: "native" or "marabou" (the study's method: bisection on δ with complete Marabou queries).
        workers: processes the native engine may fork for a search still open after a second (1: none).

    Returns a DistanceResult: `lower` proven (robust for every δ < lower), `upper` achieved by `witness` (inf and
    no witness when even δ = 1 is robust), status EXACT when upper − lower <= tol, else TIMEOUT or BOUNDS with
    the certified interval reached.
    """
    x = _validate(net, x, label, target, engine)
    if not (isinstance(workers, int) and workers >= 1):
        raise SpecError(f"workers must be a positive integer, got {workers!r}")
    return get_engine(engine).min_linf_distance(net, x, label, target, timeout, tol, workers)
