"""Tightened bounds contain every sampled pre-activation, are never looser than CROWN, and the MILP stage reaches
the exact bounds (found by enumerating activation patterns) on a tiny net."""

from __future__ import annotations

import itertools

import highspy
import numpy as np
import pytest

from advgap.verify import tighten as tighten_module
from advgap.verify.bounds import LayerBounds, backward_lower, crown_bounds
from advgap.verify.milp import new_highs
from advgap.verify.network import ReluNet
from advgap.verify.tighten import (
    Stage,
    TightenConfig,
    _ReluModel,
    alpha_pass,
    count_unstable,
    tighten,
    tightened_bounds,
)
from support.brute_force import random_net

ALL_STAGES = TightenConfig(lp_share=0.5, milp_share=0.5, milp_neuron_limit=0.2)


def _samples(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, n: int = 2000) -> np.ndarray:
    corners = np.where(rng.random((n // 2, lo.size)) < 0.5, lo, hi)
    return np.concatenate([lo + rng.random((n // 2, lo.size)) * (hi - lo), corners])


def _pre_activations(net: ReluNet, xs: np.ndarray) -> list[np.ndarray]:
    pre, h = [], xs
    for k in range(len(net.weights) - 1):
        pre.append(h @ net.weights[k].T + net.biases[k])
        h = np.maximum(pre[-1], 0)
    return pre


def _box(seed: int, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    centre = np.random.default_rng(seed + 100).random(n)
    return np.clip(centre - radius, 0, 1), np.clip(centre + radius, 0, 1)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("hidden", [(6,), (6, 5), (5, 5, 4), (4, 4, 4, 3)])
def test_tightened_bounds_are_sound_and_no_looser_than_crown(seed, hidden):
    net = random_net(seed, 5, hidden, 3)
    lo, hi = _box(seed, 5, 0.3)
    crown = crown_bounds(net, lo, hi)
    result = tighten(net, lo, hi, 2.0, config=ALL_STAGES)
    xs = _samples(np.random.default_rng(seed), lo, hi)
    for k, z in enumerate(_pre_activations(net, xs)):
        lower, upper = result.bounds.lower[k], result.bounds.upper[k]
        assert np.all(z >= lower - 1e-9) and np.all(z <= upper + 1e-9)
        assert np.all(lower >= crown.lower[k]) and np.all(upper <= crown.upper[k])
    assert count_unstable(result.bounds) <= count_unstable(crown)


def _total_width(bounds: LayerBounds) -> float:
    return sum(float(np.sum(u - low)) for low, u in zip(bounds.lower, bounds.upper, strict=True))


def test_tightening_beats_crown_on_deeper_nets():
    net = random_net(3, 5, (6, 6, 6), 3)
    lo, hi = _box(3, 5, 0.3)
    crown = crown_bounds(net, lo, hi)
    bounds = tightened_bounds(net, lo, hi, 2.0, config=ALL_STAGES)
    assert _total_width(bounds) < _total_width(crown) - 1e-3


def test_alpha_crown_in_chunks_gives_the_bounds_of_one_pass(monkeypatch):
    """Wide layers are optimised a few neurons at a time (ALPHA_ENTRIES): the same bounds as all at once."""
    net = random_net(4, 5, (8, 8, 6), 3)
    lo, hi = _box(4, 5, 0.3)
    alpha_only = TightenConfig(lp_share=0.0, milp_share=0.0)
    whole = tightened_bounds(net, lo, hi, 5.0, config=alpha_only)
    chunks = []
    original = tighten_module._alpha_chunk
    monkeypatch.setattr(tighten_module, "_alpha_chunk", lambda *a: chunks.append(len(a[4])) or original(*a))
    monkeypatch.setattr(tighten_module, "ALPHA_ENTRIES", 2 * 17)  # one neuron per chunk on layer 1 (8 + 8 ReLUs)
    chunked = tightened_bounds(net, lo, hi, 5.0, config=alpha_only)
    assert chunks and max(chunks) == 1
    for a, b in zip((*whole.lower, *whole.upper), (*chunked.lower, *chunked.upper), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_zero_budget_returns_base_bounds():
    net = random_net(0, 4, (5, 5), 3)
    lo, hi = _box(0, 4, 0.3)
    crown = crown_bounds(net, lo, hi)
    result = tighten(net, lo, hi, 0.0, crown)
    assert result.records == ()
    for k in range(2):
        assert np.array_equal(result.bounds.lower[k], crown.lower[k])
        assert np.array_equal(result.bounds.upper[k], crown.upper[k])


def test_alpha_pass_matches_crown_at_default_slopes_and_its_gradient_is_exact():
    net = random_net(4, 4, (5, 5, 4), 3)
    lo, hi = _box(4, 4, 0.3)
    crown = crown_bounds(net, lo, hi)
    lowers, uppers = list(crown.lower), list(crown.upper)
    rows = np.random.default_rng(0).normal(size=(3, 4))
    default = [np.tile((u > -low).astype(float), (3, 1)) for low, u in zip(lowers[:2], uppers[:2], strict=True)]
    bound, _ = alpha_pass(net, lowers, uppers, 2, rows, default, lo, hi)
    assert np.allclose(bound, backward_lower(net, crown, rows, 2, lo, hi))
    rng = np.random.default_rng(1)
    alphas = [rng.random((3, len(u))) for u in uppers[:2]]
    bound, grads = alpha_pass(net, lowers, uppers, 2, rows, alphas, lo, hi)
    steps = [rng.normal(size=a.shape) * 1e-6 for a in alphas]
    moved, _ = alpha_pass(net, lowers, uppers, 2, rows, [a + d for a, d in zip(alphas, steps, strict=True)], lo, hi)
    predicted = sum((g * d).sum(axis=1) for g, d in zip(grads, steps, strict=True))
    assert np.allclose(moved - bound, predicted, atol=1e-10)


def test_lp_bound_from_duals_matches_highs_optimum():
    net = random_net(5, 5, (6, 6), 3)
    lo, hi = _box(5, 5, 0.3)
    crown = crown_bounds(net, lo, hi)
    model = _ReluModel(net, list(crown.lower), list(crown.upper), 1, lo, hi, binaries=False)
    for i in range(6):
        bound = model.min_bound(net.weights[1][i], net.biases[1][i], 10.0)
        optimum = model.h.getInfo().objective_function_value + net.biases[1][i]
        assert optimum - 1e-6 <= bound <= optimum + 1e-12


def _exact_bounds(net: ReluNet, lo: np.ndarray, hi: np.ndarray) -> LayerBounds:
    """Exact pre-activation bounds: over every activation pattern of the earlier layers, an LP per neuron."""
    lowers, uppers = [], []
    n = net.n_inputs
    for k in range(len(net.hidden_sizes)):
        low, up = np.full(net.hidden_sizes[k], np.inf), np.full(net.hidden_sizes[k], -np.inf)
        for bits in itertools.product([0.0, 1.0], repeat=sum(net.hidden_sizes[:k])):
            m, c, rows, row_lo, row_hi, start = np.eye(n), np.zeros(n), [], [], [], 0
            for j in range(k):
                m, c = net.weights[j] @ m, net.weights[j] @ c + net.biases[j]
                pattern = np.array(bits[start:start + len(c)])
                start += len(c)
                rows.append(m)
                row_lo.append(np.where(pattern > 0, -c, -np.inf))
                row_hi.append(np.where(pattern > 0, np.inf, -c))
                m, c = pattern[:, None] * m, pattern * c
            m, c = net.weights[k] @ m, net.weights[k] @ c + net.biases[k]
            for i in range(len(c)):
                for sign in (1.0, -1.0):
                    value = _lp_min(sign * m[i], lo, hi, rows, row_lo, row_hi)
                    if sign > 0:
                        low[i] = min(low[i], value + c[i])
                    else:
                        up[i] = max(up[i], -value + c[i])
        lowers.append(low)
        uppers.append(up)
    return LayerBounds(tuple(lowers), tuple(uppers))


def _lp_min(cost: np.ndarray, lo: np.ndarray, hi: np.ndarray, rows: list, row_lo: list, row_hi: list) -> float:
    """min cost·x over the box and the pattern's rows (inf if the pattern's region is empty)."""
    h = new_highs()
    n = len(cost)
    h.addCols(n, cost, lo, hi, 0, np.zeros(n, np.int32), np.zeros(0, np.int32), np.zeros(0))
    if rows:
        a = np.vstack(rows)
        h.addRows(len(a), np.concatenate(row_lo), np.concatenate(row_hi), a.size,
                  np.arange(0, a.size, n, dtype=np.int32), np.tile(np.arange(n, dtype=np.int32), len(a)), a.ravel())
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return np.inf
    return h.getInfo().objective_function_value


@pytest.mark.parametrize("seed", [2, 3, 6])
def test_milp_stage_reaches_exact_bounds(seed):
    net = random_net(seed, 2, (3, 3, 3), 2)
    lo, hi = np.zeros(2), np.ones(2)
    crown, exact = crown_bounds(net, lo, hi), _exact_bounds(net, lo, hi)
    config = TightenConfig(alpha_steps=0, lp_share=0.0, milp_share=1.0, milp_neuron_limit=5.0,
                           milp_stop_at_sign=False)
    result = tighten(net, lo, hi, 60.0, crown, config)
    assert result.solves(Stage.MILP) > 0
    assert _total_width(result.bounds) < _total_width(crown) - 1e-3  # the test is not trivial
    for k in range(3):
        lower, upper = result.bounds.lower[k], result.bounds.upper[k]
        tol = 1e-3 * (1 + np.abs(exact.lower[k]) + np.abs(exact.upper[k]))
        assert np.all(lower <= exact.lower[k] + 1e-9) and np.all(upper >= exact.upper[k] - 1e-9)
        exact_unstable = (exact.lower[k] < 0) & (exact.upper[k] > 0)
        assert np.array_equal((lower < 0) & (upper > 0), exact_unstable)
        assert np.all(np.abs(lower - exact.lower[k])[exact_unstable] <= tol[exact_unstable])
        assert np.all(np.abs(upper - exact.upper[k])[exact_unstable] <= tol[exact_unstable])
