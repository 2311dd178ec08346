"""Bundled nets and model specs."""

from __future__ import annotations

import numpy as np
import pytest

from advgap.errors import ModelFormatError
from advgap.models.bundled import bundled_path, load_model, save_with_onnx
from advgap.models.torchnet import from_torch, make_mlp


def test_bundled_vanilla_is_the_study_net():
    net, meta = load_model("vanilla")
    assert (net.n_inputs, net.hidden_sizes, net.n_outputs) == (784, (50,), 10)
    assert meta["kind"] == "vanilla" and meta["architecture"] == "784-50-10"
    assert meta["test_accuracy_clean"] > 0.95
    assert bundled_path("vanilla", ".onnx").is_file()


def test_path_spec_and_onnx_beside(tmp_path):
    net = from_torch(make_mlp(784, (8,), 10))
    onnx_path = save_with_onnx(tmp_path / "n.npz", net, {"kind": "test"})
    assert onnx_path == tmp_path / "n.onnx" and onnx_path.is_file()
    loaded, meta = load_model(str(tmp_path / "n.npz"))
    assert meta == {"kind": "test"}
    np.testing.assert_array_equal(loaded.weights[0], net.weights[0])


def test_bad_specs(tmp_path):
    with pytest.raises(ModelFormatError, match="unsupported network file type"):
        load_model(tmp_path / "net.h5")
    with pytest.raises(ModelFormatError, match="no such network file"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ModelFormatError, match=r"\.npz"):
        save_with_onnx(tmp_path / "n.onnx", from_torch(make_mlp(784, (8,), 10)), {})


def test_bundled_adversarial_is_more_robust_than_vanilla():
    adv, meta = load_model("adversarial")
    _, van_meta = load_model("vanilla")
    assert (adv.n_inputs, adv.hidden_sizes, adv.n_outputs) == (784, (50,), 10)
    assert meta["kind"] == "adversarial" and meta["init"] == "vanilla"
    assert meta["test_accuracy_fgsm_0.2"] > van_meta["test_accuracy_fgsm_0.2"] + 0.3
    assert bundled_path("adversarial", ".onnx").is_file()
