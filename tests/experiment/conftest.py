"""A tiny trained MNIST net (784-8-10) saved as a network file: fast for the exact engine, accurate enough."""

import pytest
import torch
from torch import nn

from advgap.data.mnist import mnist_arrays
from advgap.formats.netfile import save_net
from advgap.models.torch_import import from_torch
from advgap.models.torchnet import make_mlp


@pytest.fixture(scope="session")
def tiny_net_file(tmp_path_factory):
    """Path of `tiny.npz`: 784-8-10 trained for a moment on 3,000 MNIST images (about 85% test accuracy)."""
    torch.manual_seed(0)
    x, y = (torch.from_numpy(a) for a in mnist_arrays("train"))
    x, y = x[:3000], y[:3000]
    model = make_mlp(784, (8,), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # several times faster than 2 threads for this size on a shared machine
    try:
        for _ in range(60):
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("nets") / "tiny.npz"
    save_net(path, from_torch(model), {"kind": "test", "architecture": "784-8-10"})
    return path
