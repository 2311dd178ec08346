"""A network to verify, with the function that replays counterexamples through the original model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advgap.models.bundled import load_model
from advgap.verify.network import ReluNet


@dataclass(frozen=True)
class LoadedNetwork:
    """`net` for the engine; `replay` maps a flat input to the original model's logits (float64).

    For ONNX files `replay` runs onnxruntime on the file itself and may differ from `net` by `replay_rtol` relative
    to the logit scale; for other formats it is `net.forward` itself (no tolerance).
    """

    net: ReluNet
    replay: Callable[[np.ndarray], np.ndarray]
    source: str
    replay_rtol: float = 0.0


def load_network(spec: str | Path) -> LoadedNetwork:
    """Load a bundled net name or a `.onnx`, `.nnet` or `.npz` file; ModelFormatError on any defect."""
    if Path(spec).suffix == ".onnx":
        from advgap.formats.onnx_import import CHECK_RTOL, load_onnx  # importing onnx takes most of a second

        model = load_onnx(spec)
        return LoadedNetwork(model.net, model.replayer, str(spec), CHECK_RTOL)
    net, _ = load_model(spec)
    return LoadedNetwork(net, net.forward, str(spec))
