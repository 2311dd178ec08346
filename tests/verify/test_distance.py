"""The minimal-distance search: its closed-form radius bound, and its certified interval against brute force and an
independent MILP on random MLPs (1–4 hidden layers) and tiny conv nets, through each of its paths."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import advgap.verify.distance as distance
import advgap.verify.parallel as parallel
from advgap.formats.onnx_import import load_onnx
from advgap.verify.api import min_linf_distance
from advgap.verify.bab import SplitRelaxation
from advgap.verify.delta_bab import PixelRooms
from advgap.verify.result import DistanceStatus
from support.brute_force import brute_force_min_distance, random_net
from support.intervals import assert_exact_interval
from support.milp_reference import milp_min_distance

TOL = 1e-3


def _support(nu: np.ndarray, kappa: float, x0: np.ndarray, delta: float) -> float:
    """max of κ + ν·x over [0,1]^n ∩ the δ-box around x0, coordinate by coordinate."""
    lo, hi = np.clip(x0 - delta, 0, 1), np.clip(x0 + delta, 0, 1)
    return kappa + float(np.maximum(nu * lo, nu * hi).sum())


def test_reach_is_the_first_radius_where_the_bound_reaches_the_level():
    rng = np.random.default_rng(0)
    x0 = np.where(rng.random(30) < 0.3, 0.0, rng.random(30))  # pixels at 0 have no room downwards
    nu = rng.normal(size=(200, 30))
    kappa = rng.normal(scale=3.0, size=200) - 2.0
    radius = PixelRooms(x0).reach(nu, kappa, limit=0.5, level=-1e-7)
    assert np.isfinite(radius).any() and np.isinf(radius).any() and (radius == 0).any()
    for r, n, k in zip(radius, nu, kappa, strict=True):
        if np.isinf(r):
            assert _support(n, k, x0, 0.5) < -1e-7
        else:
            assert _support(n, k, x0, r) >= -1e-7 - 1e-9
            if r > 1e-9:
                assert _support(n, k, x0, r - 1e-6) < -1e-7


@pytest.mark.parametrize("hidden", [(4,), (3, 3), (2, 2, 2), (2, 2, 2, 2)])
@pytest.mark.parametrize("seed", range(4))
def test_distance_equals_brute_force_on_random_mlps(seed, hidden):
    net = random_net(seed, 3, hidden)
    x = np.random.default_rng(seed + 1).random(3)
    label = int(net.predict(x))
    for target in (None, (label + 1) % 3):
        targets = [t for t in range(3) if t != label] if target is None else [target]
        result = min_linf_distance(net, x, label, target=target, timeout=30, tol=TOL)
        assert_exact_interval(net, x, label, result, brute_force_min_distance(net, x, label, targets), TOL)


def _tiny_conv_onnx(path, seed: int) -> None:
    """Conv 2×2 (2 filters) on a 1×3×3 image → ReLU → Flatten → Gemm to 3 classes: 8 ReLUs."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(size=(2, 1, 2, 2)).astype(np.float32), "W1"),
        numpy_helper.from_array(rng.normal(scale=0.5, size=2).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(size=(3, 8)).astype(np.float32), "W2"),
        numpy_helper.from_array(rng.normal(scale=0.5, size=3).astype(np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W1", "b1"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W2", "b2"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.parametrize("seed", range(3))
def test_distance_equals_brute_force_on_tiny_conv_nets(tmp_path, seed):
    _tiny_conv_onnx(tmp_path / "conv.onnx", seed)
    net = load_onnx(tmp_path / "conv.onnx").net
    assert net.hidden_sizes == (8,)
    x = np.random.default_rng(seed).random(9)
    label = int(net.predict(x))
    targets = [t for t in range(3) if t != label]
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
    assert_exact_interval(net, x, label, result, brute_force_min_distance(net, x, label, targets), TOL)


@pytest.mark.parametrize("seed", range(3))
def test_every_lower_bound_holds_against_an_independent_milp(seed):
    """Nets too large to enumerate: 6 inputs, 8×8 ReLUs; per target, the MILP optimum lies in the interval."""
    net = random_net(seed, 6, (8, 8), n_outputs=4)
    x = np.random.default_rng(seed + 7).random(6)
    label = int(net.predict(x))
    for target in [t for t in range(4) if t != label]:
        result = min_linf_distance(net, x, label, target=target, timeout=30, tol=TOL)
        reference = milp_min_distance(net, x, label, target)
        if np.isinf(reference):
            assert result.lower >= 1.0
            continue
        assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
        assert result.status is DistanceStatus.EXACT


def test_tightened_bounds_path_runs_and_stays_exact(monkeypatch):
    calls = []
    real = distance.tightened_bounds
    monkeypatch.setattr(distance, "QUICK_SHARE", 0.0)  # tighten at the first slice boundary
    monkeypatch.setattr(distance, "SLICE", 1e-3)
    monkeypatch.setattr(distance, "tightened_bounds", lambda *a, **k: calls.append(a) or real(*a, **k))
    net = random_net(1, 6, (10, 10, 10), n_outputs=4)
    x = np.random.default_rng(1).random(6)
    label = int(net.predict(x))
    result = min_linf_distance(net, x, label, target=(label + 1) % 4, timeout=30, tol=TOL)
    assert calls, "the search never tightened its bounds"
    reference = milp_min_distance(net, x, label, (label + 1) % 4)
    assert result.status is DistanceStatus.EXACT
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6


def test_nodes_bounded_below_the_bounds_radius_use_exact_first_layer_bounds(monkeypatch):
    """Once the incumbent falls below the radius of the intermediate bounds, batches are bounded with the first
    layer made exact on their own box (`SplitRelaxation.on_box`), and the answer stays exact."""
    calls = []
    real = SplitRelaxation.on_box
    monkeypatch.setattr(SplitRelaxation, "on_box", lambda self, lo, hi: calls.append(hi - lo) or real(self, lo, hi))
    for seed in range(4):
        net = random_net(seed, 3, (6,))
        x = np.random.default_rng(seed + 1).random(3)
        label = int(net.predict(x))
        targets = [t for t in range(3) if t != label]
        result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
        assert_exact_interval(net, x, label, result, brute_force_min_distance(net, x, label, targets), TOL)
    assert calls, "no batch was bounded on a box smaller than the bounds' one"


def test_parallel_path_runs_and_merges_soundly(monkeypatch):
    calls = []
    real = parallel.run_in_parallel
    monkeypatch.setattr(distance, "PARALLEL_AFTER", 0.0)
    monkeypatch.setattr(distance, "run_in_parallel", lambda *a: calls.append(a[3]) or real(*a))
    net = random_net(5, 6, (10, 10), n_outputs=4)
    x = np.random.default_rng(5).random(6)
    label = int(net.predict(x))
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL, workers=2)
    assert calls == [2], "the search did not go parallel"
    reference = min(milp_min_distance(net, x, label, t) for t in range(4) if t != label)
    assert result.status is DistanceStatus.EXACT
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
    logits = net.forward(result.witness)
    assert logits[result.target] >= logits[label]


def test_timeout_is_honoured_with_a_certified_interval():
    net = random_net(11, 20, (80, 80, 80), n_outputs=10)  # 150 unstable ReLUs: far from settled in 1 s
    x = np.random.default_rng(11).random(20)
    label = int(net.predict(x))
    result = min_linf_distance(net, x, label, timeout=1.0, tol=1e-9)
    assert result.seconds <= 1.5
    assert result.status is DistanceStatus.TIMEOUT
    assert 0.0 <= result.lower <= result.upper


def test_checks_below_the_incumbent_run_and_stay_sound(monkeypatch):
    """With no time for the search below the incumbent, the bisection of complete checks alone gets the answer."""
    calls = []
    real = distance._Query._raise_lower
    monkeypatch.setattr(distance, "MAIN_SHARE", 0.0)
    monkeypatch.setattr(distance._Query, "_raise_lower", lambda self, d: calls.append(d) or real(self, d))
    net = random_net(2, 6, (10, 10, 10), n_outputs=4)
    x = np.random.default_rng(2).random(6)
    label = int(net.predict(x))
    target = (label + 1) % 4
    result = min_linf_distance(net, x, label, target=target, timeout=30, tol=TOL)
    assert calls, "the checks below the incumbent never ran"
    reference = milp_min_distance(net, x, label, target)
    assert result.status is DistanceStatus.EXACT
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
