"""Interval and CROWN bounds contain every sampled pre-activation and output; CROWN is no looser than intervals."""

from __future__ import annotations

import numpy as np
import pytest

from advgap.verify import bounds as bounds_module
from advgap.verify.api import check_property
from advgap.verify.bounds import backward_lower, box_min, crown_bounds, interval_bounds
from advgap.verify.network import ReluNet
from advgap.verify.result import Verdict
from advgap.verify.spec import Property, Term
from support.brute_force import random_net


def _samples(rng, lo, hi, n=2000):
    corners = np.where(rng.random((n // 2, lo.size)) < 0.5, lo, hi)
    return np.concatenate([lo + rng.random((n // 2, lo.size)) * (hi - lo), corners])


def _pre_activations(net, xs):
    pre, h = [], xs
    for k in range(len(net.weights) - 1):
        z = h @ net.weights[k].T + net.biases[k]
        pre.append(z)
        h = np.maximum(z, 0)
    return pre


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hidden", [(6,), (5, 4), (4, 4, 3)])
def test_bounds_contain_sampled_values(seed, hidden):
    rng = np.random.default_rng(seed)
    net = random_net(seed, 5, hidden, 4)
    centre = rng.random(5)
    lo, hi = np.clip(centre - 0.2, 0, 1), np.clip(centre + 0.2, 0, 1)
    xs = _samples(rng, lo, hi)
    pre = _pre_activations(net, xs)
    ibp, crown = interval_bounds(net, lo, hi), crown_bounds(net, lo, hi)
    for k, z in enumerate(pre):
        for bounds in (ibp, crown):
            assert np.all(z >= bounds.lower[k] - 1e-9) and np.all(z <= bounds.upper[k] + 1e-9)
        assert np.all(crown.lower[k] >= ibp.lower[k] - 1e-12) and np.all(crown.upper[k] <= ibp.upper[k] + 1e-12)
    rows = rng.normal(size=(3, 4))
    lower = backward_lower(net, crown, rows, len(net.weights) - 1, lo, hi)
    assert np.all(net.forward(xs) @ rows.T >= lower - 1e-9)


def test_first_layer_bounds_are_exact_box_extremes():
    net = random_net(1, 4, (3,), 2)
    lo, hi = np.zeros(4), np.ones(4)
    bounds = interval_bounds(net, lo, hi)
    w, b = net.weights[0], net.biases[0]
    corners = np.array(np.meshgrid(*[[0.0, 1.0]] * 4)).reshape(4, -1).T
    z = corners @ w.T + b
    assert np.allclose(bounds.lower[0], z.min(axis=0)) and np.allclose(bounds.upper[0], z.max(axis=0))
    assert np.allclose(box_min(w, lo, hi) + b, z.min(axis=0))


def test_a_net_without_hidden_layers_has_no_intermediate_bounds_and_is_verified():
    """A purely linear net (an ONNX file of one Gemm): no ReLU to bound, and the property check still decides."""
    net = ReluNet.from_layers([(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2))])
    assert crown_bounds(net, np.zeros(2), np.ones(2)).lower == ()
    term = Term(np.array([[1.0, -1.0]]), np.zeros(1), "y0 <= y1")
    holds = check_property(net, Property(np.array([0.6, 0.0]), np.array([1.0, 0.4]), (term,)), timeout=5)
    violated = check_property(net, Property(np.zeros(2), np.ones(2), (term,)), timeout=5)
    assert holds.verdict is Verdict.ROBUST and violated.verdict is Verdict.COUNTEREXAMPLE


def test_crown_stops_at_its_deadline_with_interval_bounds_for_the_neurons_left(monkeypatch):
    """Past the deadline CROWN leaves a neuron at its (sound, looser) interval bounds; before it, CROWN's are used."""
    net = random_net(5, 6, (8, 7, 5), 3)
    lo, hi = np.zeros(6), np.full(6, 0.5)
    ibp, full = interval_bounds(net, lo, hi), crown_bounds(net, lo, hi)
    late = crown_bounds(net, lo, hi, deadline=-np.inf)
    for k in range(3):
        np.testing.assert_array_equal(late.lower[k], ibp.lower[k])
        np.testing.assert_array_equal(late.upper[k], ibp.upper[k])
    monkeypatch.setattr(bounds_module, "CHUNK", 2)
    clock = iter(range(1_000_000))
    monkeypatch.setattr(bounds_module.time, "monotonic", lambda: next(clock))
    half = crown_bounds(net, lo, hi, deadline=1.5)  # two chunks of layer 1, then the clock has passed
    np.testing.assert_array_equal(half.lower[1][:4], full.lower[1][:4])
    np.testing.assert_array_equal(half.lower[1][4:], ibp.lower[1][4:])
    np.testing.assert_array_equal(half.upper[2], ibp.upper[2])
    assert np.all(full.upper[1] - full.lower[1] <= ibp.upper[1] - ibp.lower[1] + 1e-12)
