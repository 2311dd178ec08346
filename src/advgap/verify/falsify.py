"""Cheap falsification in numpy: projected gradient ascent on the property's violation, no torch.

Used by the exact engine for upper bounds (a point found here is a real counterexample once replayed) and to
pick which terms of a property to attack first. Deterministic for a given seed.
"""

from __future__ import annotations

import time

import numpy as np

from advgap.verify.network import ReluNet
from advgap.verify.spec import Property


def input_gradient(net: ReluNet, xs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Input gradients of `rows[i] @ y(xs[i])` for a batch of points and linear output rows."""
    pre, h = [], xs
    last = len(net.weights) - 1
    for k in range(last):
        z = h @ net.weights_t[k] + net.biases[k]
        pre.append(z)
        h = np.maximum(z, 0.0)
    grad = rows
    for k in range(last, -1, -1):
        grad = grad @ net.weights[k]
        if k > 0:
            grad = grad * (pre[k - 1] > 0)
    return grad


def pgd_falsify(
    net: ReluNet,
    prop: Property,
    steps: int = 60,
    restarts: int = 2,
    seed: int = 0,
    start: np.ndarray | None = None,
    deadline: float = np.inf,
) -> tuple[np.ndarray | None, int | None]:
    """Search the box for a point satisfying some term; return (point, term index) or (None, None); the search
    stops early at `deadline` (time.monotonic()).

    Each term's most violated row is attacked by signed-gradient ascent (L∞ steps, step size decaying from a
    quarter of the box width), from `start` (the box centre if None) and `restarts - 1` uniform random points,
    all terms and restarts batched. The returned point is inside the box and satisfies the term in float64.
    """
    rng = np.random.default_rng(seed)
    lo, hi = prop.lo, prop.hi
    width = hi - lo
    n_terms = len(prop.terms)
    centre = (lo + hi) / 2 if start is None else np.clip(start, lo, hi)
    starts = [np.repeat(centre[None], n_terms, axis=0)]
    starts += [lo + rng.random((n_terms, lo.size)) * width for _ in range(restarts - 1)]
    xs = np.concatenate(starts)
    term_of = np.tile(np.arange(n_terms), restarts)
    for step in range(steps + 1):
        y = net.forward(xs)
        rows = np.empty_like(y)
        for i, t in enumerate(term_of):
            term = prop.terms[t]
            slack = term.A @ y[i] - term.b
            if np.all(slack <= 0):
                return xs[i].copy(), int(t)
            rows[i] = -term.A[int(np.argmax(slack))]
        if step == steps or time.monotonic() > deadline:
            break
        grad = input_gradient(net, xs, rows)
        size = 0.25 * (1.0 - step / steps) + 0.01
        xs = np.clip(xs + size * width * np.sign(grad), lo, hi)
    return None, None
