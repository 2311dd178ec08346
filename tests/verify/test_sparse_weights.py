"""Sparse weights: which layers the ReluNet stores as CSR, that they compute what the dense layers compute, and that
every engine path on them agrees with brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import sparse

import advgap.verify.network as network
from advgap.errors import ModelFormatError
from advgap.experiment.runner import weights_hash
from advgap.formats.netfile import load_net, save_net
from advgap.verify import bounds
from advgap.verify.api import check_property, min_linf_distance
from advgap.verify.bounds import crown_bounds, interval_bounds
from advgap.verify.network import ReluNet
from advgap.verify.result import Verdict
from advgap.verify.spec import robustness_spec
from support.brute_force import brute_force_feasible, brute_force_min_distance
from support.intervals import assert_exact_interval

TOL = 1e-3


def _sparse_layers(seed: int, sizes: tuple[int, ...], density: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Dense (W, b) pairs whose weights keep each entry with probability `density` (at least one per row)."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        keep = rng.random((n_out, n_in)) < density
        keep[np.arange(n_out), rng.integers(0, n_in, n_out)] = True
        layers.append((rng.normal(size=(n_out, n_in)) * keep, rng.normal(scale=0.5, size=n_out)))
    return layers


def _dense_twin(net: ReluNet) -> ReluNet:
    """The same net with every weight dense (built around `from_layers`, which would sparsify again)."""
    return ReluNet(tuple(network.dense(w) for w in net.weights), net.biases)


@pytest.fixture
def everything_sparse(monkeypatch):
    """Store every weight as CSR, however small or dense, so tiny nets reach the sparse code."""
    monkeypatch.setattr(network, "SPARSE_DENSITY", 1.0)
    monkeypatch.setattr(network, "SPARSE_MIN_ENTRIES", 0)


def test_large_thin_layers_are_stored_sparse_the_rest_dense():
    layers = _sparse_layers(0, (784, 400, 50, 10), 0.01)
    layers[1] = (np.random.default_rng(1).normal(size=(50, 400)), layers[1][1])  # dense
    net = ReluNet.from_layers(layers)
    assert [sparse.issparse(w) for w in net.weights] == [True, False, False]  # the last: too small to pay
    assert sparse.issparse(net.weights_t[0]) and net.weights_t[0].shape == (784, 400)
    given_sparse = ReluNet.from_layers([(sparse.csr_array(w), b) for w, b in layers])
    assert [sparse.issparse(w) for w in given_sparse.weights] == [True, False, False]


def test_sparse_layers_compute_what_dense_ones_do(monkeypatch):
    net = ReluNet.from_layers(_sparse_layers(2, (784, 400, 300, 40, 10), 0.01))
    assert [sparse.issparse(w) for w in net.weights] == [True, True, False, False]
    twin = _dense_twin(net)
    calls = []
    original = bounds._sparse_back_substitute
    monkeypatch.setattr(bounds, "_sparse_back_substitute", lambda *a: calls.append(a[2].shape) or original(*a))
    rng = np.random.default_rng(3)
    x = rng.random((5, 784))
    np.testing.assert_allclose(net.forward(x), twin.forward(x), rtol=1e-12, atol=1e-12)
    lo, hi = np.clip(x[0] - 0.02, 0, 1), np.clip(x[0] + 0.02, 0, 1)
    for ours, theirs in ((interval_bounds(net, lo, hi), interval_bounds(twin, lo, hi)),
                         (crown_bounds(net, lo, hi), crown_bounds(twin, lo, hi))):
        for a, b in zip((*ours.lower, *ours.upper), (*theirs.lower, *theirs.upper), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    assert calls and calls[0][1] == 400  # layer 1's CROWN bounds went back through sparse coefficients


def test_sparse_weights_are_checked_like_dense_ones():
    w, b = _sparse_layers(4, (784, 200, 10), 0.01)[0]
    bad = sparse.csr_array(w)
    bad.data[0] = np.nan
    with pytest.raises(ModelFormatError, match="NaN or inf"):
        ReluNet.from_layers([(bad, b), (np.ones((10, 200)), np.zeros(10))])


def test_network_file_and_weights_hash_do_not_depend_on_the_storage(tmp_path):
    net = ReluNet.from_layers(_sparse_layers(5, (784, 300, 10), 0.02))
    assert sparse.issparse(net.weights[0])
    save_net(tmp_path / "net.npz", net, {"arch": "test"})
    loaded, meta = load_net(tmp_path / "net.npz")
    assert meta == {"arch": "test"} and sparse.issparse(loaded.weights[0])
    assert (loaded.weights[0] != net.weights[0]).nnz == 0
    assert weights_hash(loaded) == weights_hash(net) == weights_hash(_dense_twin(net))


def test_a_network_file_with_corrupt_sparse_parts_is_refused(tmp_path):
    net = ReluNet.from_layers(_sparse_layers(6, (784, 300, 10), 0.02))
    save_net(tmp_path / "net.npz", net, {})
    parts = dict(np.load(tmp_path / "net.npz"))
    parts["W0.indices"] = parts["W0.indices"] + 1000  # past the 784 columns
    np.savez(tmp_path / "bad.npz", **parts)
    with pytest.raises(ModelFormatError, match=r"bad\.npz: layer 0: malformed sparse weight \(.*784") as caught:
        load_net(tmp_path / "bad.npz")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("n_inputs", "hidden"), [(3, (4, 3)), (12, (5, 4))])
def test_engine_on_sparse_weights_agrees_with_brute_force(everything_sparse, seed, n_inputs, hidden):
    """3 inputs take the input-splitting path of the property check, 12 the ReLU branch and bound."""
    net = ReluNet.from_layers(_sparse_layers(seed, (n_inputs, *hidden, 3), 0.6))
    assert all(sparse.issparse(w) for w in net.weights)
    x = np.random.default_rng(seed + 10).random(n_inputs)
    label = int(net.predict(x))
    targets = [t for t in range(3) if t != label]
    exact = brute_force_min_distance(net, x, label, targets)
    result = min_linf_distance(net, x, label, timeout=30, tol=TOL)
    assert_exact_interval(net, x, label, result, exact, TOL)
    for delta in (0.9 * exact, 1.1 * exact) if np.isfinite(exact) else (0.5,):
        prop = robustness_spec(x, label, min(delta, 1.0), 3)
        found = any(brute_force_feasible(net, prop.lo, prop.hi, t.A, t.b) for t in prop.terms)
        verdict = check_property(net, prop, timeout=30).verdict
        assert verdict is (Verdict.COUNTEREXAMPLE if found else Verdict.ROBUST)
