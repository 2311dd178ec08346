"""The advgap network file: one `.npz` holding the weights and a JSON metadata record.

Layout: arrays `W0, b0, W1, b1, ...` in PyTorch's (out, in) layout (see `advgap.verify.network`) and `meta`,
a 0-d string array holding JSON (architecture, training profile, seed, accuracies, ...). A sparse weight is stored
as its CSR parts `W{k}.data`, `W{k}.indices`, `W{k}.indptr`, `W{k}.shape` instead. Readable with numpy and scipy,
so the verifier never needs torch to load a net.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from advgap.errors import ModelFormatError
from advgap.files import atomic_write
from advgap.verify.network import ReluNet


def save_net(path: str | Path, net: ReluNet, meta: dict[str, Any]) -> None:
    """Write `net` and `meta` to `path` atomically (a crash never leaves a half-written file)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        if sparse.issparse(w):
            arrays.update({f"W{k}.data": w.data, f"W{k}.indices": w.indices, f"W{k}.indptr": w.indptr,
                           f"W{k}.shape": np.array(w.shape)})
        else:
            arrays[f"W{k}"] = w
        arrays[f"b{k}"] = b
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_write(path) as fh:
        np.savez(fh, **arrays)


def _weight(data: Any, k: int) -> np.ndarray | sparse.csr_array:
    """Weight k of an opened network file, dense or from its CSR parts."""
    if f"W{k}" in data.files:
        return data[f"W{k}"]
    shape = tuple(int(n) for n in data[f"W{k}.shape"])
    return sparse.csr_array((data[f"W{k}.data"], data[f"W{k}.indices"], data[f"W{k}.indptr"]), shape=shape)


def load_net(path: str | Path) -> tuple[ReluNet, dict[str, Any]]:
    """Read a network file written by `save_net`; raise `ModelFormatError` naming the file on any defect."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: {'a directory, not a' if path.is_dir() else 'no such'} network file")
    try:
        with np.load(path, allow_pickle=False) as data:
            n_layers = sum(1 for key in data.files if key.startswith("b"))
            layers = [(_weight(data, k), data[f"b{k}"]) for k in range(n_layers)]
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: not a readable advgap network file ({exc})") from exc
    try:
        return ReluNet.from_layers(layers), meta
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from exc
