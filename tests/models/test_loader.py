"""The one loader: bundled names and network files (torch modules: test_torch_import.py)."""

from __future__ import annotations

import numpy as np
import pytest

from advgap.errors import ModelFormatError
from advgap.models.bundled import WEIGHTS_DIR, save_with_onnx
from advgap.models.loader import load_network
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import make_mlp


def test_bundled_vanilla_is_the_study_net():
    network = load_network("vanilla")
    net, meta = network.net, network.meta
    assert (net.n_inputs, net.hidden_sizes, net.n_outputs) == (784, (50,), 10)
    assert meta["kind"] == "vanilla" and meta["architecture"] == "784-50-10"
    assert meta["test_accuracy_clean"] > 0.95
    assert network.source == "vanilla" and network.input_shape == (784,)
    assert (WEIGHTS_DIR / "vanilla.onnx").is_file()


def test_path_spec_and_onnx_beside(tmp_path):
    net = from_torch(make_mlp(784, (8,), 10))
    onnx_path = save_with_onnx(tmp_path / "n.npz", net, {"kind": "test"})
    assert onnx_path == tmp_path / "n.onnx" and onnx_path.is_file()
    loaded = load_network(str(tmp_path / "n.npz"))
    assert loaded.meta == {"kind": "test"}
    np.testing.assert_array_equal(loaded.net.weights[0], net.weights[0])
    via_onnx = load_network(onnx_path)
    assert via_onnx.meta == {"kind": "test"} and via_onnx.input_shape == (784,)  # the metadata travels inside
    x = np.random.default_rng(0).uniform(size=784)
    np.testing.assert_allclose(via_onnx.replay(x), net.forward(x), atol=1e-4)


def test_bad_specs(tmp_path):
    with pytest.raises(ModelFormatError, match="unsupported network file type"):
        load_network(tmp_path / "net.h5")
    with pytest.raises(ModelFormatError, match="no such network file"):
        load_network(tmp_path / "missing.npz")
    with pytest.raises(ModelFormatError, match=r"\.npz"):
        save_with_onnx(tmp_path / "n.onnx", from_torch(make_mlp(784, (8,), 10)), {})


def test_bundled_adversarial_is_more_robust_than_vanilla():
    adv, van = load_network("adversarial"), load_network("vanilla")
    assert (adv.net.n_inputs, adv.net.hidden_sizes, adv.net.n_outputs) == (784, (50,), 10)
    assert adv.meta["kind"] == "adversarial" and adv.meta["init"] == "vanilla"
    assert adv.meta["test_accuracy_fgsm_0.2"] > van.meta["test_accuracy_fgsm_0.2"] + 0.3
    assert (WEIGHTS_DIR / "adversarial.onnx").is_file()
