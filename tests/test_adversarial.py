"""One definition of "adversarial for target t", the same in the attacks, the exact engine and its replays."""

import math

import numpy as np
import pytest
import torch
from tests.support.brute_force import random_net

from advgap.adversarial import is_adversarial, margin
from advgap.attacks import bisect_min_delta, fmn
from advgap.models.torchnet import to_torch
from advgap.verify.api import min_linf_distance
from advgap.verify.spec import robustness_spec


def test_margin_is_the_same_on_numpy_and_torch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4))
    logits[0, 2] = logits[0, 1]  # a tie counts as adversarial
    labels = rng.integers(0, 4, 50)
    labels[0] = 1
    targets = (labels + rng.integers(1, 4, 50)) % 4
    targets[0] = 2
    for t in (targets, None):
        as_numpy = margin(logits, labels, t)
        as_torch = margin(torch.from_numpy(logits), torch.from_numpy(labels),
                          None if t is None else torch.from_numpy(t)).numpy()
        np.testing.assert_allclose(as_numpy, as_torch)
    rows = np.arange(50)
    expected = logits[rows, targets] >= logits[rows, labels]
    np.testing.assert_array_equal(is_adversarial(logits, labels, targets), expected)
    assert is_adversarial(logits, labels, targets)[0]
    untargeted = np.array([np.sum(logits[k] >= logits[k, labels[k]]) >= 2 for k in rows])
    np.testing.assert_array_equal(is_adversarial(logits, labels), untargeted)


def test_the_exact_engine_asks_the_same_question():
    """robustness_spec's term for target t holds on logits y exactly when margin(y) >= 0."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        y = rng.normal(size=5).round(1)  # rounding makes ties frequent
        label, target = rng.choice(5, size=2, replace=False)
        term = robustness_spec(np.zeros(3), int(label), 0.1, 5, [int(target)]).terms[0]
        assert term.holds(y) == bool(is_adversarial(y[None], np.array([label]), np.array([target]))[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_no_attack_beats_the_exact_per_target_lower_bound(seed):
    """On a small net, per (image, target): every attack's δ >= the exact lower end, its point is a counterexample
    to the exact engine's own query at that δ, and the exact witness passes the attacks' success check."""
    net = random_net(seed, 6, (10, 10), n_outputs=4)
    model = to_torch(net, torch.float64)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0.2, 0.8, size=(5, 6))
    labels = net.predict(xs)
    pairs = [(k, t) for k in range(5) for t in range(4) if t != labels[k]]
    x = torch.from_numpy(xs[[k for k, _ in pairs]])
    y = torch.from_numpy(labels[[k for k, _ in pairs]].astype(np.int64))
    t = torch.tensor([t for _, t in pairs])
    attacks = {
        "fgsm": bisect_min_delta(model, x, y, t, attack="fgsm"),
        "pgd": bisect_min_delta(model, x, y, t, attack="pgd", steps=20, generator=torch.Generator().manual_seed(0)),
        "fmn": fmn(model, x, y, t, steps=100),
    }
    checked = 0
    for row, (k, target) in enumerate(pairs):
        exact = min_linf_distance(net, xs[k], int(labels[k]), target, timeout=20, tol=1e-4)
        if exact.witness is not None:
            assert is_adversarial(net.forward(exact.witness)[None], labels[[k]], np.array([target]))[0]
        for name, result in attacks.items():
            delta = float(result.delta[row])
            if not math.isfinite(delta):
                continue
            assert delta >= exact.lower - 1e-9, f"{name} beat the exact lower bound on pair {(k, target)}"
            point = result.x_adv[row].numpy()
            prop = robustness_spec(xs[k], int(labels[k]), delta + 1e-12, net.n_outputs, [target])
            assert prop.violated_by(point, net.forward(point)) == 0, f"{name}'s point is no counterexample"
            checked += 1
    assert checked >= 10, f"only {checked} attack results had a finite δ to compare"
