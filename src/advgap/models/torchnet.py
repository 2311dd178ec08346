"""The torch models advgap trains: the study's MLP and ERAN's ConvSmall; copy a `ReluNet` into an MLP; eval mode.

The other direction, any supported torch module to a `ReluNet`, is `advgap.models.torch_import.from_torch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from advgap.verify.network import ReluNet, dense


def make_mlp(n_inputs: int = 784, hidden: tuple[int, ...] = (50,), n_outputs: int = 10) -> nn.Sequential:
    """A ReLU MLP `n_inputs - hidden... - n_outputs` (the study's net is 784-50-10), PyTorch's default init."""
    sizes = (n_inputs, *hidden, n_outputs)
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def make_conv_small() -> nn.Sequential:
    """ERAN's ConvSmall on flat MNIST inputs: conv 16×4×4/2, ReLU, conv 32×4×4/2, ReLU, dense 100, ReLU, dense 10."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)), nn.Conv2d(1, 16, 4, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2),
        nn.ReLU(), nn.Flatten(), nn.Linear(800, 100), nn.ReLU(), nn.Linear(100, 10),
    )


ARCHITECTURES = ("mlp", "conv-small")


def make_model(arch: str, hidden: tuple[int, ...]) -> nn.Sequential:
    """A freshly initialised 784-in, 10-out model: `mlp` with the `hidden` sizes, or `conv-small`."""
    if arch == "mlp":
        return make_mlp(784, hidden, 10)
    if arch == "conv-small":
        return make_conv_small()
    raise ValueError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHITECTURES)})")


def describe(model: nn.Module) -> str:
    """A one-line architecture string: `784-100-100-10` for an MLP, the layer list for other models."""
    layers = [m for m in model.modules() if next(m.children(), None) is None]
    if all(isinstance(m, nn.Linear | nn.ReLU) for m in layers):
        linears = [m for m in layers if isinstance(m, nn.Linear)]
        return "-".join(str(n) for n in (*(m.in_features for m in linears), linears[-1].out_features))
    parts = []
    for m in layers:
        if isinstance(m, nn.Conv2d):
            parts.append(f"conv {m.out_channels}x{m.kernel_size[0]}x{m.kernel_size[1]}/{m.stride[0]}")
        elif isinstance(m, nn.Linear):
            parts.append(f"dense {m.out_features}")
    return ", ".join(parts)


def to_torch(net: ReluNet, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """A torch MLP computing the same function as `net` (weights copied, same (out, in) layout)."""
    model = make_mlp(net.n_inputs, net.hidden_sizes, net.n_outputs).to(dtype)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, w, b in zip(linears, net.weights, net.biases, strict=True):
            lin.weight.copy_(torch.tensor(dense(w)))
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
