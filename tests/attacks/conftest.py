"""Fixtures for attack tests: hand-written tiny nets, a linear two-class net with known minimal δ, a trained MLP."""

import pytest
import torch
from torch import nn

from advgap.data import mnist_arrays
from advgap.models.torchnet import make_mlp


def linear_net(weight: list[list[float]] | torch.Tensor, bias: list[float] | torch.Tensor) -> nn.Linear:
    weight = torch.as_tensor(weight, dtype=torch.float32)
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return layer


@pytest.fixture
def make_linear():
    """The factory `linear_net(weight, bias)` for tests that write a net out by hand."""
    return linear_net


@pytest.fixture
def linear_case():
    """A linear 784 → 3 net whose minimal L∞ distances are known in closed form.

    Class 2 has zero weights and bias -1e4: unreachable. Inputs x_i = 0.5 + a_i·sign(v), v = w0 - w1, are
    class 0 and reach class 1 at exactly δ*_i = margin_i/‖v‖₁ = 0.16 + a_i (no [0, 1] clipping, as
    0.5 - |a_i| > δ*_i). Returns (model, x, labels, δ*).
    """
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(2, 784, generator=gen)
    v = w[0] - w[1]
    a = torch.tensor([-0.15, -0.1, -0.03, 0.0, 0.07, 0.12])
    bias0 = float(-0.5 * v.sum() + 0.16 * v.abs().sum())
    model = linear_net(torch.cat([w, torch.zeros(1, 784)]), [bias0, 0.0, -1e4])
    x = 0.5 + a.unsqueeze(1) * v.sign()
    labels = torch.zeros(len(a), dtype=torch.int64)
    return model, x, labels, 0.16 + a


@pytest.fixture(scope="session")
def trained_mlp():
    """A 784-32-10 ReLU MLP trained for a few seconds on 4,000 MNIST images, and 300 test images."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = (torch.from_numpy(a) for a in mnist_arrays("train"))
    x, y = x[:4000], y[:4000]
    model = make_mlp(784, (32,), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(3):
        for batch in torch.randperm(len(x)).split(64):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.set_num_threads(previous)
    xt, yt = (torch.from_numpy(a) for a in mnist_arrays("test"))
    return model.eval(), xt[:300], yt[:300]
