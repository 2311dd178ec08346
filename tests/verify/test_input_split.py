"""Input splitting against brute force on tiny nets (activation patterns × LP), and its contract."""

from __future__ import annotations

import itertools
import time

import highspy
import numpy as np
import pytest

import advgap.verify.native as native
from advgap.verify.bounds import LayerBounds, crown_bounds
from advgap.verify.input_split import (
    SPLIT_MAX_INPUTS,
    SPLIT_MIN_UNSTABLE,
    box_bounds,
    input_split_search,
    suits_input_split,
)
from advgap.verify.native import check_property
from advgap.verify.network import ReluNet
from advgap.verify.result import Verdict
from advgap.verify.spec import Property, Term
from support.brute_force import random_net

GAP = 0.02  # the brute-force margin by which a case is made robust or violated


def _pattern_maps(net: ReluNet, pattern: list[np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple]:
    """Hidden pre-activations and logits as affine maps (M, c) of x under a fixed activation pattern."""
    m, c = np.eye(net.n_inputs), np.zeros(net.n_inputs)
    pre = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        m, c = w @ m, w @ c + b
        if k < len(net.weights) - 1:
            pre.append((m, c))
            m, c = pattern[k][:, None] * m, pattern[k] * c
    return pre, (m, c)


def _min_max_slack(net: ReluNet, lo: np.ndarray, hi: np.ndarray, term: Term) -> float:
    """Exact min over the box of max_r (A_r·y(x) − b_r), by one LP (x, t) per activation pattern."""
    best = np.inf
    n, inf = net.n_inputs, highspy.kHighsInf
    for bits in itertools.product([0.0, 1.0], repeat=sum(net.hidden_sizes)):
        pattern = np.split(np.array(bits), np.cumsum(net.hidden_sizes)[:-1])
        pre, (m, c) = _pattern_maps(net, pattern)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        cost = np.append(np.zeros(n), 1.0)
        h.addCols(n + 1, cost, np.append(lo, -inf), np.append(hi, inf), 0, np.zeros(0, np.int32),
                  np.zeros(0, np.int32), np.zeros(0))
        index = np.arange(n + 1, dtype=np.int32)
        for (pm, pc), active in zip(pre, pattern, strict=True):
            for j in range(len(pc)):  # active: pm x + pc >= 0, inactive: pm x + pc <= 0
                lower, upper = (-pc[j], inf) if active[j] else (-inf, -pc[j])
                h.addRow(lower, upper, n + 1, index, np.append(pm[j], 0.0))
        for a_r, b_r in zip(term.A, term.b, strict=True):  # a_r (M x + c) − b_r − t <= 0
            h.addRow(-inf, b_r - a_r @ c, n + 1, index, np.append(a_r @ m, -1.0))
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            best = min(best, h.getInfo().objective_function_value)
    return best


def _case(seed: int, n_inputs: int, hidden: tuple[int, ...], shape: tuple[int, ...], violated: bool):
    """A net and a property whose terms (rows per term in `shape`) miss the box by GAP, except the first term
    when `violated`, which holds with GAP to spare somewhere."""
    rng = np.random.default_rng(seed + 1000)
    net = random_net(seed, n_inputs, hidden)
    centre = rng.uniform(-1, 1, n_inputs)
    half = rng.uniform(0.2, 1.0, n_inputs)
    lo, hi = centre - half, centre + half
    terms = []
    for k, rows in enumerate(shape):
        raw = Term(rng.normal(size=(rows, net.n_outputs)), np.zeros(rows))
        exact = _min_max_slack(net, lo, hi, raw)
        shift = exact + GAP if violated and k == 0 else exact - GAP
        terms.append(Term(raw.A, raw.b + shift, f"term {k}"))
    return net, Property(lo, hi, tuple(terms))


CASES = [  # seed, inputs, hidden layers, rows per term; each robust case needs splitting (checked below)
    (31, 2, (6,), (1,)),
    (35, 2, (3, 3), (2, 1)),
    (59, 2, (2, 2, 2, 2), (1, 2)),
    (30, 3, (7,), (3,)),
    (22, 3, (3, 2), (1, 2)),
    (3, 3, (2, 2, 2), (3,)),
    (38, 4, (2, 2, 2, 2), (2, 1, 2)),
    (17, 4, (4, 2), (2, 3)),
    (15, 5, (3, 3), (1, 1)),
    (6, 5, (2, 2, 2), (3, 2)),
]


@pytest.mark.parametrize("violated", [False, True], ids=["robust", "violated"])
@pytest.mark.parametrize(("seed", "n_inputs", "hidden", "shape"), CASES)
def test_agrees_with_brute_force(seed, n_inputs, hidden, shape, violated):
    net, prop = _case(seed, n_inputs, hidden, shape, violated)
    outcome = input_split_search(net, prop, time.monotonic() + 30)
    assert "input split" in outcome.detail
    if violated:
        assert outcome.verdict is Verdict.COUNTEREXAMPLE, outcome.detail
        assert prop.violated_by(outcome.point, net.forward(outcome.point)) == outcome.term
    else:
        assert outcome.verdict is Verdict.ROBUST, outcome.detail
        assert outcome.point is None and outcome.boxes > 5  # the root bounds alone do not decide it


def _wide_case(seed: int, n_inputs: int, hidden: tuple[int, ...], shape: tuple[int, ...], violated: bool):
    """A net with many unstable neurons (input splitting's domain) and a property tight on sampled outputs: each
    term misses the sampled values by 5% of their spread, except the first when `violated`, which one sampled
    point satisfies."""
    rng = np.random.default_rng(seed + 2000)
    net = random_net(seed, n_inputs, hidden, 4)
    lo = rng.uniform(-1.5, -0.5, n_inputs)
    hi = lo + rng.uniform(1.5, 2.0, n_inputs)
    xs = lo + rng.random((4000, n_inputs)) * (hi - lo)
    ys = net.forward(xs)
    terms = []
    for k, rows in enumerate(shape):
        A = rng.normal(size=(rows, 4))
        values = (ys @ A.T).max(axis=1)
        if violated and k == 0:
            b = A @ ys[np.argmin(values)] + 1e-9
        else:
            b = np.full(rows, values.min() - 0.05 * (values.max() - values.min()))
        terms.append(Term(A, b, f"term {k}"))
    return net, Property(lo, hi, tuple(terms))


WIDE_CASES = [(1, 2, (10, 10), (1, 2)), (2, 3, (8, 8, 8), (3,)), (3, 2, (12, 12), (2, 1, 1))]


@pytest.mark.parametrize("violated", [False, True], ids=["robust", "violated"])
@pytest.mark.parametrize(("seed", "n_inputs", "hidden", "shape"), WIDE_CASES)
def test_check_property_takes_the_input_split_path(seed, n_inputs, hidden, shape, violated, monkeypatch):
    """check_property chooses input splitting here and agrees with its ReLU branch and bound / MILP path."""
    net, prop = _wide_case(seed, n_inputs, hidden, shape, violated)
    assert suits_input_split(net, crown_bounds(net, prop.lo, prop.hi))
    calls = []

    def recording(*args, **kwargs):
        calls.append(args)
        return input_split_search(*args, **kwargs)

    monkeypatch.setattr(native, "pgd_falsify", lambda *args, **kwargs: (None, None))  # leave the work to the split
    monkeypatch.setattr(native, "input_split_search", recording)
    result = check_property(net, prop, timeout=30)
    assert calls and "input split" in result.detail
    monkeypatch.setattr(native, "suits_input_split", lambda *args: False)
    reference = check_property(net, prop, timeout=30)
    assert "input split" not in reference.detail
    assert result.verdict is reference.verdict is (Verdict.COUNTEREXAMPLE if violated else Verdict.ROBUST)
    if violated:
        assert prop.violated_by(result.counterexample, net.forward(result.counterexample)) == result.term


@pytest.mark.parametrize("alpha_steps", [0, 4])
@pytest.mark.parametrize(("seed", "hidden"), [(0, (6,)), (1, (5, 4)), (2, (4, 4, 3)), (3, (3, 3, 3, 3))])
def test_box_bounds_contain_sampled_outputs(seed, hidden, alpha_steps):
    rng = np.random.default_rng(seed)
    net = random_net(seed, 4, hidden, 3)
    lo = rng.uniform(-1, 0.5, (32, 4))
    hi = lo + rng.uniform(0, 0.8, (32, 4)) * (rng.random((32, 4)) > 0.1)  # some zero-width dimensions
    coeffs = rng.normal(size=(5, 3))
    bounds = box_bounds(net, lo, hi, coeffs, alpha_steps)
    xs = lo[:, None, :] + rng.random((32, 500, 4)) * (hi - lo)[:, None, :]
    corners = np.where(rng.random((32, 200, 4)) < 0.5, lo[:, None, :], hi[:, None, :])
    values = net.forward(np.concatenate([xs, corners], axis=1)) @ coeffs.T  # (32, 700, 5)
    assert np.all(values.min(axis=1) >= bounds.lower - 1e-9)


def test_alpha_steps_never_loosen_the_bounds():
    rng = np.random.default_rng(9)
    net = random_net(9, 3, (8, 8, 8), 3)
    lo = rng.uniform(-1, 0, (64, 3))
    hi = lo + 0.6
    coeffs = rng.normal(size=(4, 3))
    plain, tuned = box_bounds(net, lo, hi, coeffs), box_bounds(net, lo, hi, coeffs, alpha_steps=6)
    assert np.all(tuned.lower >= plain.lower - 1e-12)


def test_undecidable_point_box_is_unknown():
    """A zero-width box whose only term misses by less than the soundness margin cannot be split or refuted."""
    net = random_net(0, 2, (3,))
    x = np.array([0.3, -0.2])
    y = net.forward(x)
    row = np.array([[1.0, -1.0, 0.0]])
    prop = Property(x, x.copy(), (Term(row, row @ y - 5e-8),))
    outcome = input_split_search(net, prop, time.monotonic() + 10)
    assert outcome.verdict is Verdict.UNKNOWN and "too small" in outcome.detail


def test_deadline_gives_timeout():
    net, prop = _case(3, 3, (2, 2, 2), (3,), violated=False)
    outcome = input_split_search(net, prop, time.monotonic() - 1.0)
    assert outcome.verdict is Verdict.TIMEOUT


def _all_unstable(net: ReluNet) -> LayerBounds:
    return LayerBounds(tuple(-np.ones(n) for n in net.hidden_sizes), tuple(np.ones(n) for n in net.hidden_sizes))


def test_selection_rule():
    wide = random_net(0, SPLIT_MAX_INPUTS, (SPLIT_MIN_UNSTABLE + 1,))
    assert suits_input_split(wide, _all_unstable(wide))
    too_many_inputs = random_net(0, SPLIT_MAX_INPUTS + 1, (SPLIT_MIN_UNSTABLE + 1,))
    assert not suits_input_split(too_many_inputs, _all_unstable(too_many_inputs))
    few_unstable = random_net(0, 5, (SPLIT_MIN_UNSTABLE,))
    assert not suits_input_split(few_unstable, _all_unstable(few_unstable))
