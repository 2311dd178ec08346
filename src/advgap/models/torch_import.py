"""torch module → ReluNet, faithfully: through torch's ONNX export and advgap's ONNX import, then checked.

Only layers the verifier represents exactly are accepted (`SUPPORTED`); any other layer is refused by name before
anything is exported, and operators a custom `forward` applies without a module (torch.tanh, ...) are refused by the
ONNX import. After conversion the ReluNet's outputs are compared with the module's own on random inputs in [0, 1]
and refused beyond `CHECK_RTOL`, as the ONNX import does with onnxruntime. The module is converted in eval mode
(BatchNorm with its running statistics, Dropout off) and given back in the mode it came in.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advgap.errors import ModelFormatError
from advgap.formats.onnx_export import set_metadata, write_onnx
from advgap.formats.onnx_import import CHECK_RTOL, CHECK_SAMPLES, load_onnx
from advgap.models.torchnet import eval_mode, parameter_dtype
from advgap.verify.network import ReluNet

SUPPORTED: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.ReLU, nn.Flatten, nn.Unflatten, nn.Conv1d, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d,
    nn.AvgPool1d, nn.AvgPool2d, nn.MaxPool1d, nn.MaxPool2d, nn.Identity, nn.Dropout,
)
OPSET = 13


def from_torch(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> ReluNet:
    """The ReluNet computing `module` on inputs of `input_shape` (one sample, no batch dimension).

    input_shape may be left out when the first layer is an nn.Linear (its in_features). Raises ModelFormatError
    naming the layer for an unsupported one, and when the converted net differs from the module.
    """
    _check_layers(module)
    shape = _input_shape(module, input_shape)
    dtype = parameter_dtype(module)
    with eval_mode(module), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "module.onnx"
        _export(module, torch.zeros((1, *shape), dtype=dtype), path)
        try:
            net = load_onnx(path).net
        except ModelFormatError as exc:
            raise ModelFormatError(str(exc).replace(str(path), f"torch module {type(module).__name__}")) from exc
        _compare(net, replay_torch(module, shape), type(module).__name__)
    return net


def export_onnx(module: nn.Module, path: str | Path, input_shape: tuple[int, ...] | None = None,
                meta: dict[str, Any] | None = None) -> None:
    """Write `module` (supported layers only) as an ONNX file with torch's exporter, with advgap metadata `meta`.

    Unlike `advgap.formats.onnx_export.save_onnx` of its ReluNet, this keeps the module's own layers: a conv net
    stays a few hundred KB instead of its dense matrices.
    """
    import onnx

    _check_layers(module)
    shape = _input_shape(module, input_shape)
    with eval_mode(module), tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "module.onnx"
        _export(module, torch.zeros((1, *shape), dtype=parameter_dtype(module)), exported)
        model = onnx.load_model(str(exported))
    if meta is not None:
        set_metadata(model, meta)
    write_onnx(path, model)


def replay_torch(module: nn.Module, input_shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """Flat float64 inputs (n,) or (batch, n) → the module's own logits in float64, run in eval mode."""
    dtype = parameter_dtype(module)

    def replay(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        rows = torch.from_numpy(x.reshape(-1, *input_shape)).to(dtype)
        with eval_mode(module), torch.no_grad():
            y = module(rows).double().reshape(rows.shape[0], -1).numpy()
        return y[0] if x.ndim == 1 else y

    return replay


def _check_layers(module: nn.Module) -> None:
    for name, layer in module.named_modules():
        if next(layer.children(), None) is None and not isinstance(layer, SUPPORTED):
            where = f"layer {name!r}" if name else "the module"
            raise ModelFormatError(
                f"{where} ({type(layer).__name__}) cannot be verified exactly; supported layers: "
                + ", ".join(t.__name__ for t in SUPPORTED)
            )


def _input_shape(module: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if not shape or min(shape) < 1:
            raise ModelFormatError(f"input_shape must be positive dimensions, got {input_shape}")
        return shape
    first = next((m for m in module.modules() if next(m.children(), None) is None), None)
    if isinstance(first, nn.Linear):
        return (first.in_features,)
    raise ModelFormatError(
        f"give the input shape of torch module {type(module).__name__} (input_shape=(channels, height, width)): "
        "it starts with a layer other than nn.Linear"
    )


def _export(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["logits"])
        except Exception as exc:  # the exporter raises many types; all mean "this module cannot be exported"
            raise ModelFormatError(f"torch module {type(module).__name__}: ONNX export failed ({exc})") from exc


def _compare(net: ReluNet, replay: Callable[[np.ndarray], np.ndarray], what: str) -> None:
    xs = np.random.default_rng(0).uniform(0.0, 1.0, size=(CHECK_SAMPLES, net.n_inputs))
    expected = replay(xs)
    diff = float(np.max(np.abs(net.forward(xs) - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not diff <= CHECK_RTOL * scale:
        raise ModelFormatError(
            f"torch module {what}: converted network differs from the module by {diff:.3g} "
            f"(allowed {CHECK_RTOL * scale:.3g})"
        )
