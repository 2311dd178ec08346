"""Marabou engine: agreement with a Lipschitz-certified grid search on tiny nets, time limits, replay checks."""

import importlib.util
import time

import numpy as np
import pytest

from advgap.errors import SolverError, SpecError
from advgap.verify import marabou
from advgap.verify.marabou import (
    MISSING_EXTRA,
    MarabouWorker,
    check_with_worker,
    marabou_check_property,
    marabou_min_linf_distance,
)
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceStatus, Verdict
from advgap.verify.spec import Property, Term, robustness_spec

needs_marabou = pytest.mark.skipif(
    importlib.util.find_spec("maraboupy") is None, reason="optional extra 'marabou' is not installed"
)


def tiny_net(seed: int, hidden: tuple[int, ...]) -> ReluNet:
    """A random 2-input, 3-class ReLU net whose ReLU kinks and class boundaries cross the unit square."""
    rng = np.random.default_rng(seed)
    sizes = (2, *hidden, 3)
    layers, h = [], rng.random((64, 2))
    for k in range(len(sizes) - 1):
        w = rng.standard_normal((sizes[k + 1], sizes[k])) * 3.0
        b = -(h @ w.T)[rng.integers(len(h), size=sizes[k + 1]), np.arange(sizes[k + 1])]  # kink at a sample point
        layers.append((w, b))
        h = np.maximum(h @ w.T + b, 0.0)
    return ReluNet.from_layers(layers)


def lipschitz(net: ReluNet, row: np.ndarray) -> float:
    """An L∞ → scalar Lipschitz bound of x ↦ row @ net(x)."""
    bound = np.abs(row @ net.weights[-1]).sum()
    for w in net.weights[:-1]:
        bound *= np.abs(w).sum(axis=1).max()
    return float(bound)


def grid(lo: np.ndarray, hi: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """size x size grid points of the 2-D box and the L∞ radius within which every box point has a grid point."""
    axes = [np.linspace(lo[i], hi[i], size) for i in range(2)]
    points = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
    return points, float(np.max(hi - lo)) / (size - 1) / 2


def brute_force_verdict(net: ReluNet, prop: Property) -> Verdict | None:
    """COUNTEREXAMPLE if a grid point satisfies a (single-row) term, ROBUST if the Lipschitz bound proves none can,
    None when the grid cannot tell."""
    points, radius = grid(prop.lo, prop.hi, 201)
    y = net.forward(points)
    slack = [(y @ t.A[0] - t.b[0], lipschitz(net, t.A[0]) * radius) for t in prop.terms]
    if any(s.min() <= 0 for s, _ in slack):
        return Verdict.COUNTEREXAMPLE
    if all(s.min() > margin for s, margin in slack):
        return Verdict.ROBUST
    return None


def grid_distance(net: ReluNet, x: np.ndarray, label: int) -> float:
    """L∞ distance from x to the closest grid point of [0, 1]^2 classified other than `label` (inf if none)."""
    points, _ = grid(np.zeros(2), np.ones(2), 201)
    other = net.predict(points) != label
    return float(np.abs(points[other] - x).max(axis=1).min(initial=np.inf))


def cases():
    """Robustness properties at 0.5, 0.95, 1.05 and 2 times the grid's adversarial distance, on tiny nets."""
    for seed in range(5):
        for hidden in [(4,), (3, 3)]:
            net = tiny_net(seed, hidden)
            x = np.random.default_rng(100 + seed).random(2)
            label = int(net.predict(x))
            distance = grid_distance(net, x, label)
            if distance > 0.5:
                continue
            for factor in (0.5, 0.95, 1.05, 2.0):
                yield net, robustness_spec(x, label, min(1.0, factor * distance), 3)


@needs_marabou
def test_verdicts_agree_with_certified_grid():
    decided = {Verdict.ROBUST: 0, Verdict.COUNTEREXAMPLE: 0}
    with MarabouWorker() as worker:
        for net, prop in cases():
            expected = brute_force_verdict(net, prop)
            if expected is None:
                continue
            result = check_with_worker(net, prop, 30.0, worker)
            assert result.verdict is expected, result.detail
            decided[expected] += 1
            if expected is Verdict.COUNTEREXAMPLE:
                x = result.counterexample
                assert prop.violated_by(x, net.forward(x)) == result.term
    assert min(decided.values()) >= 5, decided


@needs_marabou
@pytest.mark.parametrize("seed,hidden", [(0, (4,)), (3, (3, 3))])
def test_min_distance_within_certified_grid_bounds(seed, hidden):
    net = tiny_net(seed, hidden)
    x = np.random.default_rng(100 + seed).random(2)
    label = int(net.predict(x))
    points, radius = grid(np.zeros(2), np.ones(2), 801)
    y = net.forward(points)
    dist = np.abs(points - x).max(axis=1)
    margins = [y[:, label] - y[:, t] for t in range(3) if t != label]
    slack = np.min(margins, axis=0)
    lip = max(lipschitz(net, np.eye(3)[label] - np.eye(3)[t]) for t in range(3) if t != label)
    adversarial_at = dist[slack <= 0].min()  # a grid point really adversarial: the distance is at most this
    maybe = dist[slack <= lip * radius].min() - radius  # no point can be adversarial closer than this
    result = marabou_min_linf_distance(net, x, label, timeout=60, tol=1e-3)
    assert result.status is DistanceStatus.EXACT
    assert result.upper - result.lower <= 1e-3
    assert result.lower <= adversarial_at and result.upper >= maybe
    w = result.witness
    logits = net.forward(w)
    assert np.abs(w - x).max() <= result.upper + 1e-12 and logits[result.target] >= logits[label]


def hard_net() -> tuple[ReluNet, Property]:
    """A random 20-60-60-1 net asked to reach 1.5x its sampled maximum: no case split is easy."""
    rng = np.random.default_rng(0)
    sizes = (20, 60, 60, 1)
    net = ReluNet.from_layers(
        [
            (rng.standard_normal((sizes[k + 1], sizes[k])) / np.sqrt(sizes[k]), 0.1 * rng.standard_normal(sizes[k + 1]))
            for k in range(3)
        ]
    )
    top = net.forward(rng.random((20000, 20))).max()
    return net, Property(np.zeros(20), np.ones(20), (Term(-np.ones((1, 1)), np.array([-1.5 * top]), "big"),))


@needs_marabou
@pytest.mark.parametrize("timeout", [1.0, 0.3])
def test_time_limit_is_honoured(timeout):
    net, prop = hard_net()
    start = time.perf_counter()
    result = marabou_check_property(net, prop, timeout=timeout)
    assert time.perf_counter() - start < timeout + 1.0
    assert result.verdict is Verdict.TIMEOUT
    if timeout < 1:  # below Marabou's own 1 s granularity: only killing the worker stops it in time
        assert "worker killed" in result.detail


class FakeWorker:
    """Answers 'sat' with a given point per margin, standing in for the Marabou subprocess."""

    def __init__(self, points: dict[float, np.ndarray]):
        self.points = points
        self.margins: list[float] = []

    def solve(self, net, prop, term, margin, deadline):
        self.margins.append(margin)
        return "sat", self.points[margin]


def identity_net() -> ReluNet:
    return ReluNet.from_layers([(np.eye(2), np.zeros(2)), (np.eye(2), np.zeros(2))])


def test_tampered_witness_is_not_a_counterexample():
    net = identity_net()
    prop = robustness_spec(np.array([0.8, 0.2]), 0, 0.1, 2)  # needs y1 >= y0: impossible within 0.1 of (0.8, 0.2)
    bogus = np.array([0.8, 0.2])
    result = check_with_worker(net, prop, 5.0, FakeWorker({0.0: bogus, marabou.REPLAY_MARGIN: bogus}))
    assert result.verdict is Verdict.UNKNOWN
    assert result.counterexample is None
    assert "fails the float64 replay" in result.detail


def test_boundary_point_is_retried_with_margin():
    net = identity_net()
    prop = robustness_spec(np.array([0.55, 0.45]), 0, 0.1, 2)
    on_boundary = np.array([0.5, 0.5 - 1e-12])  # what a solver's tolerance may call y1 >= y0
    inside = np.array([0.46, 0.54])
    worker = FakeWorker({0.0: on_boundary, marabou.REPLAY_MARGIN: inside})
    result = check_with_worker(net, prop, 5.0, worker)
    assert worker.margins == [0.0, marabou.REPLAY_MARGIN]
    assert result.verdict is Verdict.COUNTEREXAMPLE
    np.testing.assert_array_equal(result.counterexample, inside)


def test_missing_extra_is_a_solver_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "maraboupy" else real(name, *a))
    with pytest.raises(SolverError, match=MISSING_EXTRA.replace("[", r"\[").replace("]", r"\]")):
        marabou_check_property(identity_net(), robustness_spec(np.array([0.8, 0.2]), 0, 0.1, 2))


@needs_marabou
def test_dead_worker_gives_died_and_is_replaced():
    net = tiny_net(0, (4,))
    x = np.array([0.5, 0.5])
    good = robustness_spec(x, int(net.predict(x)), 0.5, 3)
    bad = Property(good.lo, good.hi, (Term(np.ones((1, 5)), np.zeros(1)),))  # 5 outputs for 3: the worker crashes
    with MarabouWorker() as worker:
        code, point = worker.solve(net, bad, 0, 0.0, time.perf_counter() + 10)
        assert code.startswith("died") and point is None
        assert check_with_worker(net, good, 10.0, worker).verdict is Verdict.COUNTEREXAMPLE


def test_mismatched_property_is_a_spec_error():
    net = identity_net()
    with pytest.raises(SpecError, match="3 inputs"):
        check_with_worker(net, robustness_spec(np.full(3, 0.5), 0, 0.1, 2), 5.0, FakeWorker({}))
    with pytest.raises(SpecError, match="2 columns"):
        check_with_worker(net, robustness_spec(np.full(2, 0.5), 0, 0.1, 3), 5.0, FakeWorker({}))
