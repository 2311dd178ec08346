"""The study's torch MLP: build one, copy a `ReluNet` into it, run a module in eval mode.

The other direction, any supported torch module to a `ReluNet`, is `advgap.models.torch_import.from_torch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from advgap.verify.network import ReluNet


def make_mlp(n_inputs: int = 784, hidden: tuple[int, ...] = (50,), n_outputs: int = 10) -> nn.Sequential:
    """A ReLU MLP `n_inputs - hidden... - n_outputs` (the study's net is 784-50-10), PyTorch's default init."""
    sizes = (n_inputs, *hidden, n_outputs)
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def to_torch(net: ReluNet, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A torch MLP computing the same function as `net` (weights copied, same (out, in) layout)."""
    model = make_mlp(net.n_inputs, net.hidden_sizes, net.n_outputs).to(dtype)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, w, b in zip(linears, net.weights, net.biases, strict=True):
            lin.weight.copy_(torch.tensor(w))
            lin.bias.copy_(torch.tensor(b))
    return model.eval()


def parameter_dtype(module: nn.Module) -> torch.dtype:
    """The dtype of the module's parameters (float32 for a module without any)."""
    return next((p.dtype for p in module.parameters()), torch.float32)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run `model` in eval mode, restoring its previous train/eval mode on exit."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
