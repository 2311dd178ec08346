"""What the verifier is asked: an input box and a disjunction of linear conditions on the outputs.

A property is *violated* (a counterexample exists) when some x in the box [lo, hi] makes at least one term true,
a term being a conjunction of rows `A @ y <= b` over the logits y = net(x). This is the form VNN-LIB's negated
properties take; the study's robustness query is the special case built by `robustness_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from advgap.errors import SpecError


@dataclass(frozen=True, eq=False)
class Term:
    """A conjunction `A @ y <= b` (A of shape (m, n_outputs)); `name` says what it means, e.g. 'target 3'.

    Compared by identity (`eq=False`): field-wise == on numpy arrays has no truth value, so `terms.index(t)` would fail.
    """

    A: np.ndarray
    b: np.ndarray
    name: str = ""

    def holds(self, y: np.ndarray, tol: float = 0.0) -> bool:
        """Whether the logits y satisfy every row, allowing `tol` of slack."""
        return bool(np.all(self.A @ y <= self.b + tol))


@dataclass(frozen=True)
class Property:
    """Input box [lo, hi] and the disjunction `terms` whose satisfaction is a counterexample."""

    lo: np.ndarray
    hi: np.ndarray
    terms: tuple[Term, ...]

    def __post_init__(self) -> None:
        if self.lo.shape != self.hi.shape or self.lo.ndim != 1:
            raise SpecError(f"input bounds have shapes {self.lo.shape} and {self.hi.shape}")
        if not (np.isfinite(self.lo).all() and np.isfinite(self.hi).all()):
            raise SpecError("input bounds contain NaN or inf")
        if np.any(self.lo > self.hi):
            first = int(np.argmax(self.lo > self.hi))
            raise SpecError(f"empty input box: lower bound above upper bound at input {first}")
        if not self.terms:
            raise SpecError("property has no output condition")

    def violated_by(self, x: np.ndarray, y: np.ndarray, tol: float = 0.0) -> int | None:
        """Index of the first term that (x, y) satisfies with x inside the box, else None (float64 check)."""
        if x.shape != self.lo.shape or np.any(x < self.lo) or np.any(x > self.hi):
            return None
        return next((k for k, term in enumerate(self.terms) if term.holds(y, tol)), None)

    def replay(self, forward: Callable[[np.ndarray], np.ndarray], point: np.ndarray) -> tuple[np.ndarray, int] | None:
        """The one counterexample replay: `point` clipped into the box, run through `forward` in float64.

        Returns (the clipped point, the index of the first term its outputs satisfy), or None. Every counterexample
        an engine reports has passed this.
        """
        x = np.clip(np.asarray(point, dtype=np.float64), self.lo, self.hi)
        hit = self.violated_by(x, np.asarray(forward(x), dtype=np.float64))
        return None if hit is None else (x, hit)


def linf_box(x: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The L∞ box of radius `delta` around x intersected with [0, 1]^n."""
    if not np.isfinite(delta) or not 0.0 <= delta <= 1.0:
        raise SpecError(f"delta must lie in [0, 1], got {delta}")
    x = np.asarray(x, dtype=np.float64)
    return np.clip(x - delta, 0.0, 1.0), np.clip(x + delta, 0.0, 1.0)


def robustness_spec(
    x: np.ndarray, label: int, delta: float, n_outputs: int, targets: Sequence[int] | None = None
) -> Property:
    """The study's query: is there x' in the δ-box ∩ [0,1]^n with logit_t(x') >= logit_label(x') for a target t?

    That is advgap's one definition of adversarial for target t (`advgap.adversarial`), as property rows.

    `targets` defaults to every class but `label`. Term k reads `y_label - y_t <= 0` and is named 'target t'.
    """
    if not 0 <= label < n_outputs:
        raise SpecError(f"label {label} is out of range for {n_outputs} classes")
    if targets is None:
        targets = [t for t in range(n_outputs) if t != label]
    terms = []
    for t in targets:
        if not 0 <= t < n_outputs or t == label:
            raise SpecError(f"target {t} must be a class in [0, {n_outputs}) other than the label {label}")
        row = np.zeros((1, n_outputs))
        row[0, label], row[0, t] = 1.0, -1.0
        terms.append(Term(row, np.zeros(1), f"target {t}"))
    lo, hi = linf_box(x, delta)
    return Property(lo, hi, tuple(terms))
