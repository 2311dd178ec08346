import numpy as np
import pytest
import torch

from advgap.attacks.evaluate import accuracies, evaluate
from advgap.data import mnist_arrays
from advgap.errors import ModelFormatError, SpecError
from advgap.formats.netfile import save_net
from advgap.verify.network import ReluNet


@pytest.fixture(scope="module")
def centroid_net() -> ReluNet:
    """784-10-10: hidden unit c scores x against the centred mean image of class c; output = hidden."""
    x, y = mnist_arrays("train")
    means = np.stack([x[y == c].mean(axis=0) for c in range(10)])
    return ReluNet.from_layers([(means - x.mean(axis=0), np.zeros(10)), (np.eye(10), np.zeros(10))])


def numpy_fgsm_accuracy(net: ReluNet, x: np.ndarray, y: np.ndarray, delta: float) -> float:
    """FGSM written out for one hidden layer: ∇_x CE = W0ᵀ (1[W0 x + b0 > 0] ⊙ W1ᵀ (softmax(z) - onehot(y)))."""
    (w0, w1), (b0, b1) = net.weights, net.biases
    pre = x @ w0.T + b0
    z = np.maximum(pre, 0) @ w1.T + b1
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    grad = ((p @ w1) * (pre > 0)) @ w0
    x_adv = np.clip(x + delta * np.sign(grad), 0, 1)
    return float(np.mean((net.predict(x) == y) & (net.predict(x_adv) == y)))


def test_accuracies_on_known_linear_case(linear_case):
    """δ* = 0.01, 0.06, 0.13, 0.16, 0.23, 0.28: FGSM at δ = 0.15 flips exactly the first three."""
    model, x, labels, _ = linear_case
    assert accuracies(model, x, labels, 0.15, batch_size=4) == (1.0, 0.5)
    assert accuracies(model, x, labels, 0.0, batch_size=4) == (1.0, 1.0)
    assert accuracies(model, x, labels, 0.3, batch_size=5) == (1.0, 0.0)


@pytest.mark.parametrize("delta", [-0.1, 1.5, float("nan")])
def test_accuracies_reject_bad_delta(linear_case, delta):
    model, x, labels, _ = linear_case
    with pytest.raises(SpecError, match="FGSM δ must be in"):
        accuracies(model, x, labels, delta)


def test_evaluate_matches_independent_numpy_fgsm(centroid_net, tmp_path):
    path = tmp_path / "centroid.npz"
    save_net(path, centroid_net, {"kind": "test"})
    result = evaluate(str(path), 0.1)
    x, y = mnist_arrays("test")
    assert result.model == str(path) and result.n == 10000 and result.fgsm_delta == 0.1
    assert result.clean_accuracy == pytest.approx(np.mean(centroid_net.predict(x) == y), abs=2e-4)
    assert 0.5 < result.clean_accuracy < 0.8
    assert result.fgsm_accuracy == pytest.approx(numpy_fgsm_accuracy(centroid_net, x, y, 0.1), abs=2e-3)
    assert result.fgsm_accuracy < result.clean_accuracy - 0.2


def test_evaluate_rejects_wrong_input_size(tmp_path):
    path = tmp_path / "small.npz"
    save_net(path, ReluNet.from_layers([(np.ones((2, 5)), np.zeros(2))]), {})
    with pytest.raises(SpecError, match="takes 5 inputs"):
        evaluate(str(path))


def test_evaluate_missing_model(tmp_path):
    with pytest.raises(ModelFormatError, match=r"nothere\.npz"):
        evaluate(str(tmp_path / "nothere.npz"))


def test_accuracies_leave_model_gradients_alone(linear_case):
    model, x, labels, _ = linear_case
    accuracies(model, x, labels, 0.1)
    assert all(p.grad is None for p in model.parameters())
    assert torch.is_grad_enabled()
