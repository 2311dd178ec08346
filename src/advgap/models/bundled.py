"""The bundled study nets (`vanilla`, `adversarial`): where they lie, and how a trained net is saved beside them.

A net is stored as `<name>.npz` (advgap network file, with metadata) and `<name>.onnx` beside it. The ONNX exporter
is imported only to save one: importing `onnx` takes most of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advgap.errors import ModelFormatError
from advgap.formats.netfile import save_net
from advgap.verify.network import ReluNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = ("vanilla", "adversarial")


def bundled_path(name: str, suffix: str = ".npz") -> Path:
    """Where the bundled net `name` is stored (`.npz`, or `.onnx` for its ONNX export)."""
    return WEIGHTS_DIR / f"{name}{suffix}"


def save_with_onnx(path: str | Path, net: ReluNet, meta: dict[str, Any]) -> Path:
    """Write `net` to the network file `path` (.npz) and its ONNX export beside it; return the ONNX path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelFormatError(f"{path}: a network file must end in .npz")
    from advgap.formats.onnx_export import save_onnx

    save_net(path, net, meta)
    onnx_path = path.with_suffix(".onnx")
    save_onnx(onnx_path, net)
    return onnx_path
