"""Branch-and-bound batches: fewer nodes at a time on wide nets, several splits at once while the frontier is small,
no slope steps after the deadline, and the bounds the steps lead to are float64 bounds of valid slopes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from advgap.verify.bab import (
    BATCH_ENTRIES,
    Nodes,
    Objective,
    SplitRelaxation,
    batch_size,
    branching_score,
    splits_per_node,
)
from advgap.verify.bounds import crown_bounds
from support.brute_force import random_net


def test_batches_shrink_on_wide_nets():
    assert batch_size(SimpleNamespace(hidden_sizes=(256, 256))) == 64
    assert batch_size(SimpleNamespace(hidden_sizes=(23328, 18432, 9216, 4608, 2304))) == BATCH_ENTRIES // 57888
    assert batch_size(SimpleNamespace(hidden_sizes=(10**7,))) == 1


def test_a_small_frontier_splits_several_neurons_at_once():
    assert splits_per_node(1, 0, 64) == 4  # 16 children: the next batch at most a quarter empty
    assert splits_per_node(4, 0, 64) == 4 and splits_per_node(5, 0, 64) == 3
    assert splits_per_node(20, 0, 64) == 1 and splits_per_node(2, 40, 64) == 3
    assert splits_per_node(64, 0, 64) == 1  # a full frontier grows by one split per node


def test_branching_prefers_splits_that_refute_children():
    scores = branching_score(np.array([[-9.0, 0.5], [0.2, 0.2], [-1.0, -0.5], [-0.1, 0.5]]))
    assert list(np.argsort(scores)) == [2, 1, 0, 3]  # both refuted, then the least left open; ties by the sum


def test_children_of_several_splits_cover_every_sign_combination():
    relax, nodes, obj = _batch(1)
    rel = relax.backward(nodes, obj)
    splits = relax.choose_splits(nodes, [0, 2], rel, obj, count=3)
    assert all(len(s) == 3 and len(set(s)) == 3 for s in splits)
    kids = nodes.children(0, splits[0])
    signs = {tuple(int(kid[0][k][j]) for k, j in splits[0]) for kid in kids}
    assert len(kids) == 8 and signs == {(a, b, c) for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)}
    assert all(int(np.count_nonzero(np.concatenate(kid[0]))) == 3 for kid in kids)
    assert all(np.count_nonzero(p) == 0 for p in nodes.phase)  # the parent's rows are not written


def _batch(seed: int) -> tuple[SplitRelaxation, Nodes, Objective]:
    net = random_net(seed, 6, (8, 8), 3)
    lo, hi = np.full(6, 0.2), np.full(6, 0.8)
    relax = SplitRelaxation(net, crown_bounds(net, lo, hi))
    nodes = Nodes.stack([relax.root() for _ in range(4)])
    coef = np.random.default_rng(seed).normal(size=(4, 8))
    return relax, nodes, Objective(coef, np.zeros(4), lo, hi)


def test_no_slope_steps_after_the_deadline():
    relax, nodes, obj = _batch(0)
    alpha = [a.copy() for a in nodes.alpha]
    best, _ = relax.optimise(nodes, obj, iters=10, deadline=0.0)  # long past
    assert all(np.array_equal(a, b) for a, b in zip(alpha, nodes.alpha, strict=True))
    np.testing.assert_allclose(best.bound, relax.backward(nodes, obj).bound, rtol=0, atol=0)


def test_optimised_bounds_are_float64_and_no_looser():
    for seed in range(3):
        relax, nodes, obj = _batch(seed)
        start = relax.backward(nodes, obj).bound
        best, _ = relax.optimise(nodes, obj, iters=10)
        assert best.bound.dtype == np.float64 and best.kappa.dtype == np.float64
        slack = 1e-5 * (1 + np.abs(start))  # the steps rank slopes by float32 bounds
        assert np.all(best.bound <= start + slack)
        recomputed = relax.backward(Nodes(nodes.phase, nodes.alpha, nodes.beta), obj).bound  # the last slopes
        assert np.all(best.bound <= recomputed + slack)


def test_on_box_makes_the_first_layer_exact_and_keeps_the_bound_sound():
    """Nodes bounded on a box inside the bounds' box: first-layer bounds exact there, deeper ones as they were,
    and the node bounds no looser and still above g at sampled points of the smaller box."""
    net = random_net(3, 6, (8, 8), 3)
    relax, nodes, _ = _batch(3)
    lo, hi = np.full(6, 0.4), np.full(6, 0.6)
    small = relax.on_box(lo, hi)
    w, b = net.weights[0], net.biases[0]
    np.testing.assert_allclose(small.lower[0], np.maximum(w, 0) @ lo + np.minimum(w, 0) @ hi + b, atol=1e-12)
    np.testing.assert_allclose(small.upper[0], np.maximum(w, 0) @ hi + np.minimum(w, 0) @ lo + b, atol=1e-12)
    assert all(np.array_equal(a, c) for a, c in zip(small.lower[1:], relax.lower[1:], strict=True))
    coef = np.random.default_rng(3).normal(size=(4, 8))
    obj = Objective(coef, np.zeros(4), lo, hi)
    tight, loose = small.backward(nodes, obj).bound, relax.backward(nodes, obj).bound
    assert np.all(tight <= loose + 1e-9) and np.any(tight < loose - 1e-6)
    xs = np.random.default_rng(4).uniform(lo, hi, size=(2000, 6))
    h = xs
    for k in range(2):
        h = np.maximum(h @ net.weights[k].T + net.biases[k], 0)
    assert np.all((h @ coef.T).max(axis=0) <= tight + 1e-9)
