"""`load_network`: the one loader, for bundled names, network files and torch modules, one return type."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from advgap.errors import ModelFormatError
from advgap.formats.network import Network, read_network_file
from advgap.models.bundled import BUNDLED, bundled_path

if TYPE_CHECKING:
    from torch import nn


def load_network(source: str | Path | nn.Module, input_shape: tuple[int, ...] | None = None) -> Network:
    """A `Network` from a bundled name (`vanilla`, `adversarial`), a `.npz`/`.onnx`/`.nnet` path or a torch module.

    input_shape: one sample's shape, needed only for torch modules that do not start with nn.Linear (e.g.
    (1, 28, 28) for an MNIST conv net). Raises ModelFormatError naming the defect.
    """
    if not isinstance(source, str | Path):
        from advgap.formats.onnx_import import CHECK_RTOL
        from advgap.models.torch_import import from_torch, replay_torch

        net = from_torch(source, input_shape)
        shape = input_shape or (net.n_inputs,)
        return Network(net, replay_torch(source, shape), f"torch module {type(source).__name__}", tuple(shape),
                       replay_rtol=CHECK_RTOL)
    if str(source) in BUNDLED:
        path = bundled_path(str(source))
        if not path.is_file():
            raise ModelFormatError(f"bundled net {source!r} is missing ({path}); train it with `advgap train {source}`")
        return dataclasses.replace(read_network_file(path), source=str(source))
    return read_network_file(source)
