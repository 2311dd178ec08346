"""torch modules → ReluNet: exact for what the verifier represents, refused by name for everything else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advgap.errors import ModelFormatError
from advgap.models.loader import load_network
from advgap.models.torch_import import from_torch


def _outputs_agree(module: nn.Module, input_shape: tuple[int, ...], atol: float = 1e-5) -> None:
    was_training = module.training
    network = load_network(module, input_shape)
    assert module.training == was_training, "converted in eval mode, given back in the mode it came in"
    xs = np.random.default_rng(1).uniform(size=(20, int(np.prod(input_shape))))
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(xs).float().reshape(-1, *input_shape)).double().numpy()
    np.testing.assert_allclose(network.net.forward(xs), expected, atol=atol)
    np.testing.assert_allclose(network.replay(xs), expected, atol=1e-12)
    assert network.input_shape == input_shape


def test_conv_net_round_trips():
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.3),
        nn.AvgPool2d(2), nn.Identity(), nn.Flatten(), nn.Linear(3 * 2 * 2, 5, bias=False), nn.ReLU(), nn.Linear(5, 3),
    )
    module[1].running_mean.uniform_(-0.5, 0.5)
    module[1].running_var.uniform_(0.5, 2.0)
    module.train()  # converted in eval mode, given back in training mode
    _outputs_agree(module, (1, 8, 8))
    assert from_torch(module, (1, 8, 8)).hidden_sizes == (3 * 4 * 4, 5)


def test_max_pooling_conv_net_round_trips():
    """nn.MaxPool2d becomes an exact ReLU max tree (issue 14's ONNX encoding), checked against the module."""
    torch.manual_seed(2)
    module = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Linear(2 * 3 * 3, 3))
    _outputs_agree(module, (1, 6, 6))


def test_linear_layers_without_relu_and_without_bias_keep_their_function():
    torch.manual_seed(1)
    _outputs_agree(nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3)), (4,))
    _outputs_agree(nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 3, bias=False)), (4,))


@pytest.mark.parametrize("layer", [nn.Tanh(), nn.Sigmoid(), nn.LeakyReLU(), nn.Softmax(dim=1), nn.GELU()])
def test_unsupported_layers_are_refused_by_name(layer):
    module = nn.Sequential(nn.Linear(4, 6), layer, nn.Linear(6, 3))
    with pytest.raises(ModelFormatError, match=rf"layer '1' \({type(layer).__name__}\) cannot be verified exactly"):
        load_network(module)


class _FunctionalTanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


def test_an_operator_applied_in_forward_is_refused_by_the_onnx_import():
    with pytest.raises(ModelFormatError, match=r"torch module _FunctionalTanh: .*Tanh"):
        load_network(_FunctionalTanh())


def test_nan_weights_and_missing_input_shape_are_refused():
    module = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        module[0].weight[0, 0] = float("nan")
    with pytest.raises(ModelFormatError, match="NaN"):
        load_network(module)
    with pytest.raises(ModelFormatError, match="give the input shape"):
        load_network(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2)))


def test_a_conv_net_on_flat_inputs_imports_through_its_unflatten():
    """torch exports nn.Unflatten with shape arithmetic on integer constants (Shape, Mod, Add, Slice, Concat)."""
    from advgap.models.torchnet import make_conv_small

    torch.manual_seed(0)
    model = make_conv_small()
    net = from_torch(model, (784,))
    assert net.hidden_sizes == (2704, 800, 100)
    x = torch.rand(3, 784)
    with torch.no_grad():
        np.testing.assert_allclose(net.forward(x.double().numpy()), model(x).double().numpy(), rtol=1e-4, atol=1e-5)
