"""Residual connections: a tensor still needed after a Relu crosses that ReLU layer as pass-through neurons."""

import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from advgap.formats.onnx_import import load_onnx
from advgap.verify.api import min_linf_distance
from advgap.verify.result import DistanceStatus
from support.brute_force import brute_force_min_distance

RNG = np.random.default_rng(8)


def save(tmp_path, nodes, inits, n_in, n_out):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path / "res.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_a_relu_output_skipping_a_layer_crosses_it_as_one_neuron_each(tmp_path):
    """r1 = relu(W1 x); y = W3 (relu(W2 r1) + r1): r1 >= 0 needs relu(r1) = r1 only."""
    inits = {"W1": RNG.normal(size=(4, 3)), "W2": RNG.normal(size=(4, 4)), "W3": RNG.normal(size=(2, 4))}
    nodes = [
        helper.make_node("MatMul", ["x", "W1t"], ["a1"], name="fc1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "W2t"], ["a2"], name="fc2"),
        helper.make_node("Relu", ["a2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "r1"], ["s"], name="skip"),
        helper.make_node("MatMul", ["s", "W3t"], ["y"], name="fc3"),
    ]
    inits = {f"{k}t": v.T for k, v in inits.items()} | inits
    model = load_onnx(save(tmp_path, nodes, inits, 3, 2))  # checked against onnxruntime on load
    assert model.net.hidden_sizes == (4, 8)
    x = RNG.uniform(size=3)
    r1 = np.maximum(inits["W1"] @ x, 0)
    expected = inits["W3"] @ (np.maximum(inits["W2"] @ r1, 0) + r1)
    np.testing.assert_allclose(model.net.forward(x), expected, rtol=1e-5)


def test_the_input_skipping_a_layer_crosses_it_as_a_signed_pair(tmp_path):
    """y = W2 relu(W1 x) + x: the input may be negative, so it crosses as relu(x) − relu(−x)."""
    w1, w2 = RNG.normal(size=(3, 2)), RNG.normal(size=(2, 3))
    nodes = [
        helper.make_node("MatMul", ["x", "W1t"], ["a1"], name="fc1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "W2t"], ["a2"], name="fc2"),
        helper.make_node("Add", ["a2", "x"], ["y"], name="skip"),
    ]
    model = load_onnx(save(tmp_path, nodes, {"W1t": w1.T, "W2t": w2.T}, 2, 2))
    assert model.net.hidden_sizes == (3 + 2 * 2,)
    x = RNG.uniform(-1, 1, size=2)
    np.testing.assert_allclose(model.net.forward(x), w2 @ np.maximum(w1 @ x, 0) + x, rtol=1e-5)


class ResBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x))) + x))


def test_relu_of_the_input_plus_the_input(tmp_path):
    """The smallest skip: y = relu(x) + x, the Relu's own input still needed after it."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "x"], ["y"], name="skip"),
    ]
    model = load_onnx(save(tmp_path, nodes, {}, 2, 2))
    x = np.array([-0.5, 0.25])
    np.testing.assert_allclose(model.net.forward(x), np.maximum(x, 0) + x)


@pytest.mark.parametrize("seed", [6, 8, 10])  # seeds whose nets change class inside [0, 1]²
def test_torch_residual_block_has_the_brute_force_min_distance(tmp_path, seed):
    torch.manual_seed(seed)
    module = ResBlock()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.mul_(3)
    path = tmp_path / "block.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter; the new one needs onnxscript
        torch.onnx.export(module, torch.zeros(1, 2), str(path), dynamo=False, input_names=["x"])
    model = load_onnx(path)
    assert model.net.hidden_sizes == (2 + 2 * 2, 2)
    x = np.random.default_rng(seed).uniform(size=2)
    label = int(model.net.predict(x))
    reference = brute_force_min_distance(model.net, x, label, [t for t in range(3) if t != label])
    result = min_linf_distance(model.net, x, label, timeout=30, tol=1e-3)
    assert result.status is DistanceStatus.EXACT and np.isfinite(reference)
    assert result.lower - 1e-6 <= reference <= result.upper + 1e-6
