"""The bundled nets and model specs: a bundled net by name (`vanilla`, `adversarial`) or a network file path.

A net is stored as `<name>.npz` (advgap network file, with metadata) and `<name>.onnx` beside it. The ONNX modules
are imported only for ONNX files: importing `onnx` takes most of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advgap.errors import ModelFormatError
from advgap.formats.nnet import read_nnet
from advgap.models.netfile import load_net, save_net
from advgap.verify.network import ReluNet

WEIGHTS_DIR = Path(__file__).parent / "weights"
BUNDLED = ("vanilla", "adversarial")
NETWORK_SUFFIXES = (".npz", ".onnx", ".nnet")  # the network file formats `load_model` reads


def bundled_path(name: str, suffix: str = ".npz") -> Path:
    """Where the bundled net `name` is stored (`.npz`, or `.onnx` for its ONNX export)."""
    return WEIGHTS_DIR / f"{name}{suffix}"


def load_model(spec: str | Path) -> tuple[ReluNet, dict[str, Any]]:
    """The net and metadata for `spec`: a bundled name or a path to an advgap `.npz`, `.onnx` or `.nnet` file."""
    if str(spec) in BUNDLED:
        path = bundled_path(str(spec))
        if not path.is_file():
            raise ModelFormatError(f"bundled net {spec!r} is missing ({path}); train it with `advgap train {spec}`")
        return load_net(path)
    path = Path(spec)
    if path.suffix == ".npz":
        return load_net(path)
    if path.suffix == ".onnx":
        from advgap.formats.onnx_import import load_onnx

        return load_onnx(path).net, {}
    if path.suffix == ".nnet":
        return read_nnet(path), {}
    raise ModelFormatError(f"{path}: unsupported network file type {path.suffix!r} (use {', '.join(NETWORK_SUFFIXES)})")


def save_with_onnx(path: str | Path, net: ReluNet, meta: dict[str, Any]) -> Path:
    """Write `net` to the network file `path` (.npz) and its ONNX export beside it; return the ONNX path."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelFormatError(f"{path}: a network file must end in .npz")
    from advgap.models.onnx_export import save_onnx

    save_net(path, net, meta)
    onnx_path = path.with_suffix(".onnx")
    save_onnx(onnx_path, net)
    return onnx_path
