"""The exact engine against brute force on tiny nets, and its contract: replay, timeouts, consistency."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advgap.errors import SpecError
from advgap.models.loader import load_network
from advgap.verify import native
from advgap.verify.api import check_property, check_robust, min_linf_distance
from advgap.verify.result import DistanceStatus, Verdict
from advgap.verify.spec import robustness_spec
from support.brute_force import brute_force_min_distance, random_net
from support.intervals import assert_exact_interval

TOL = 1e-3

nets = st.tuples(
    st.integers(0, 10_000),
    st.integers(2, 4),
    st.sampled_from([(3,), (5,), (4, 3), (3, 3), (2, 2, 2), (3, 2, 2), (2, 2, 2, 2)]),
)


def _image_and_label(net, seed):
    x = np.random.default_rng(seed + 1).random(net.n_inputs)
    return x, int(net.predict(x))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets)
def test_min_distance_equals_brute_force(case):
    seed, n_inputs, hidden = case
    net = random_net(seed, n_inputs, hidden)
    x, label = _image_and_label(net, seed)
    targets = [t for t in range(net.n_outputs) if t != label]
    reference = brute_force_min_distance(net, x, label, targets)
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
    assert_exact_interval(net, x, label, result, reference, TOL)


@settings(max_examples=10, deadline=None)
@given(nets, st.integers(0, 2))
def test_per_target_distance_equals_brute_force(case, target_shift):
    seed, n_inputs, hidden = case
    net = random_net(seed, n_inputs, hidden)
    x, label = _image_and_label(net, seed)
    target = (label + 1 + target_shift % 2) % net.n_outputs
    reference = brute_force_min_distance(net, x, label, [target])
    result = min_linf_distance(net, x, label, target=target, timeout=30, tol=TOL)
    if np.isinf(reference):
        assert result.lower >= 1.0
    else:
        assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
        assert result.target == target


@settings(max_examples=10, deadline=None)
@given(nets)
def test_check_robust_agrees_with_min_distance(case):
    seed, n_inputs, hidden = case
    net = random_net(seed, n_inputs, hidden)
    x, label = _image_and_label(net, seed)
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
    if result.lower > 0:
        assert check_robust(net, x, label, result.lower * 0.999).verdict is Verdict.ROBUST
    if np.isfinite(result.upper):
        below = check_robust(net, x, label, min(result.upper * 1.001, 1.0))
        assert below.verdict is Verdict.COUNTEREXAMPLE


@pytest.fixture
def falsify_calls(monkeypatch):
    """Records every call of the engine's own PGD attack (`native.pgd_falsify`), which still runs."""
    calls, real = [], native.pgd_falsify
    monkeypatch.setattr(native, "pgd_falsify", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs))
    return calls


@pytest.mark.parametrize(("seed", "n_inputs", "hidden"),
                         [(5, 4, (5,)), (9, 4, (3, 3)), (18, 3, (3, 2, 2)), (23, 4, (3, 3)), (26, 4, (5,))])
def test_without_the_engine_attack_the_verdicts_stay_and_points_are_replayed(seed, n_inputs, hidden, falsify_calls):
    """attack=False: no engine attack runs, yet ROBUST just below and COUNTEREXAMPLE (found by the search,
    replayed) just above the brute-force minimal distance, as with the attack."""
    net = random_net(seed, n_inputs, hidden)
    x, label = _image_and_label(net, seed)
    distance = brute_force_min_distance(net, x, label, [t for t in range(net.n_outputs) if t != label])
    assert np.isfinite(distance)
    for delta, expected in [(0.98 * distance, Verdict.ROBUST), (1.02 * distance, Verdict.COUNTEREXAMPLE)]:
        assert check_robust(net, x, label, delta).verdict is expected
        attacks = len(falsify_calls)
        skipped = check_robust(net, x, label, delta, attack=False)
        assert len(falsify_calls) == attacks, "attack=False ran the engine's attack"
        assert skipped.verdict is expected
        if expected is Verdict.COUNTEREXAMPLE:
            assert skipped.detail.startswith(("bab", "milp"))
            assert robustness_spec(x, label, delta, net.n_outputs).replay(net.forward, skipped.counterexample)
    assert falsify_calls  # the default path attacked: the spy sees the engine's attacks


def _study_like_net(seed: int = 0):
    """A 30-20-10... small one-hidden-layer net with MNIST-like shape: exercises the branch and bound."""
    rng = np.random.default_rng(seed)
    return random_net(seed, 30, (20,), 10), rng.random(30)


def test_bab_path_matches_milp_path_on_a_bigger_net():
    net, x = _study_like_net()
    label = int(net.predict(x))
    result = min_linf_distance(net, x, label, timeout=60, tol=TOL)
    assert result.status is DistanceStatus.EXACT
    # The same queries through the MILP path (a deeper net computing the same function: identity layer).
    w0, w1 = net.weights
    deep = type(net).from_layers([(w0, net.biases[0]), (np.eye(20), np.zeros(20)), (w1, net.biases[1])])
    deep_result = min_linf_distance(deep, x, label, timeout=60, tol=TOL)
    assert abs(deep_result.upper - result.upper) <= TOL and abs(deep_result.lower - result.lower) <= TOL


def test_counterexample_is_replayed_and_a_tampered_one_rejected():
    net, x = _study_like_net(1)
    label = int(net.predict(x))
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
    prop = robustness_spec(x, label, result.upper, net.n_outputs)
    assert prop.violated_by(result.witness, net.forward(result.witness)) is not None
    tampered = x.copy()  # the clean image is classified correctly: not a counterexample
    assert prop.violated_by(tampered, net.forward(tampered)) is None
    outside = np.clip(result.witness + 2 * result.upper, 0, 1)  # leaves the box
    assert prop.violated_by(outside, net.forward(outside)) is None


def test_timeout_is_honoured(shared_dir):
    """A 784-256-256-10 net cannot be settled to 1e-9 in 0.5 s: the answer is a certified interval, on time."""
    net = load_network(shared_dir / "vnncomp_mnistfc" / "mnist-net_256x2.onnx").net
    x = np.random.default_rng(0).random(784) * 0.2
    label = int(net.predict(x))
    start = time.monotonic()
    result = min_linf_distance(net, x, label, timeout=0.5, tol=1e-9)
    assert time.monotonic() - start < 2.0
    assert result.status is DistanceStatus.TIMEOUT
    assert 0 <= result.lower < result.upper


@pytest.mark.parametrize("delta", [-0.1, 1.5, float("nan")])
def test_delta_outside_unit_interval_is_refused(delta):
    net = random_net(0, 3, (3,))
    with pytest.raises(SpecError, match="delta"):
        check_robust(net, np.full(3, 0.5), 0, delta)


def test_bad_image_label_and_target_are_refused():
    net = random_net(0, 3, (3,))
    with pytest.raises(SpecError, match="expects 3"):
        min_linf_distance(net, np.zeros(4), 0)
    with pytest.raises(SpecError, match="label"):
        min_linf_distance(net, np.zeros(3), 7)
    with pytest.raises(SpecError, match="target"):
        min_linf_distance(net, np.zeros(3), 0, target=0)
    with pytest.raises(SpecError, match=r"\[0, 1\]"):
        min_linf_distance(net, np.full(3, 2.0), 0)


def test_check_property_reports_a_replayed_point():
    samples = np.random.default_rng(0).uniform(size=(2000, 4))
    x = np.full(4, 0.5)
    # the first random net on which a sampled point of [0, 1]^4 has another class: not robust at δ = 1
    net = next(n for n in (random_net(seed, 4, (4, 3)) for seed in range(5, 50))
               if (n.predict(samples) != n.predict(x)).any())
    label = int(net.predict(x))
    outcome = check_property(net, robustness_spec(x, label, 1.0, net.n_outputs), timeout=30)
    assert outcome.verdict is Verdict.COUNTEREXAMPLE
    logits = net.forward(outcome.counterexample)
    assert np.sort(np.delete(logits, label))[-1] >= logits[label], "replayed: some logit reaches the label's"


def test_pgd_stops_at_its_deadline_after_one_look_at_the_start(monkeypatch):
    """A passed deadline leaves the attack one forward pass (a start point that already violates still counts)."""
    from advgap.verify import falsify

    net = random_net(2, 4, (6, 5), 3)
    prop = robustness_spec(np.full(4, 0.5), int(np.argmax(net.forward(np.full(4, 0.5)))), 0.5, 3)
    steps = []
    real = falsify.input_gradient
    monkeypatch.setattr(falsify, "input_gradient", lambda *a: steps.append(1) or real(*a))
    falsify.pgd_falsify(net, prop, steps=50, deadline=-np.inf)
    assert steps == []
    falsify.pgd_falsify(net, prop, steps=50)
    assert len(steps) > 0
