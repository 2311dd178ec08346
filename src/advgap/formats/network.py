"""`Network`: a net for the verifier and the attacks, with the function that replays points through the original.

`read_network_file` reads the three file formats; `advgap.models.load_network` is the one public loader (files,
bundled names and torch modules) and returns the same type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advgap.errors import ModelFormatError
from advgap.formats.netfile import load_net
from advgap.formats.nnet import read_nnet
from advgap.verify.network import ReluNet

SUFFIXES = (".npz", ".onnx", ".nnet")


@dataclass(frozen=True)
class Network:
    """`net` for the engine; `replay` maps flat inputs (n,) or (batch, n) to the original model's logits (float64).

    For ONNX files `replay` runs onnxruntime on the file itself, for torch modules the module, for the other formats
    it is `net.forward`; it may differ from `net` by `replay_rtol` relative to the logit scale (0 for `net.forward`).
    `input_shape` is one sample's shape (the net's inputs are that tensor flattened in C order); `meta` is the
    network file's metadata (training recipe, accuracies), empty where the format has none.
    """

    net: ReluNet
    replay: Callable[[np.ndarray], np.ndarray]
    source: str
    input_shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    replay_rtol: float = 0.0


def read_network_file(path: str | Path) -> Network:
    """Read a `.onnx`, `.nnet` or advgap `.npz` file; ModelFormatError on any defect."""
    path = Path(path)
    if path.suffix == ".onnx":
        from advgap.formats.onnx_import import CHECK_RTOL, load_onnx  # onnxruntime: imported only for ONNX files

        model = load_onnx(path)
        return Network(model.net, model.replayer, str(path), model.replayer.input_shape, model.meta, CHECK_RTOL)
    if path.suffix == ".npz":
        net, meta = load_net(path)
        return Network(net, net.forward, str(path), (net.n_inputs,), meta)
    if path.suffix == ".nnet":
        net = read_nnet(path)
        return Network(net, net.forward, str(path), (net.n_inputs,))
    raise ModelFormatError(f"{path}: unsupported network file type {path.suffix!r} (use {', '.join(SUFFIXES)})")
