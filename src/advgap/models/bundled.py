"""The bundled nets (the study's `vanilla` and `adversarial`, and the zoo's): where they lie, how one is saved.

A dense net is stored as `<name>.npz` (advgap network file, with metadata) and `<name>.onnx` beside it; a conv net
only as `<name>.onnx` of its own layers (with the metadata inside; its dense form would be tens of MB). The ONNX
exporter is imported only to save one: importing `onnx` takes most of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advgap.errors import ModelFormatError
from advgap.formats.netfile import save_net
from advgap.models.zoo import STUDY_NETS, ZOO_NAMES
from advgap.verify.network import ReluNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = (*STUDY_NETS, *ZOO_NAMES)


def bundled_path(name: str) -> Path:
    """The file the bundled net `name` is loaded from: its `.npz`, or its `.onnx` where there is no `.npz`."""
    npz = WEIGHTS_DIR / f"{name}.npz"
    return npz if npz.is_file() else npz.with_suffix(".onnx")


def save_with_onnx(path: str | Path, net: ReluNet, meta: dict[str, Any]) -> Path:
    """Write `net` to the network file `path` (.npz) and its ONNX export beside it; return the ONNX path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelFormatError(f"{path}: a network file must end in .npz")
    from advgap.formats.onnx_export import save_onnx

    save_net(path, net, meta)
    onnx_path = path.with_suffix(".onnx")
    save_onnx(onnx_path, net, meta)
    return onnx_path
