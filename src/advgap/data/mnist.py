"""MNIST from IDX files (gzip or raw): parsing, checksums and where the files come from.

Search order for the directory holding the four files: the `data_dir` argument (CLI `--data-dir`), the environment
variable `ADVGAP_DATA_DIR`, then the copy bundled with the package (CC BY-SA 3.0, see files/SOURCE.txt).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from advgap.errors import DataError

BUNDLED_DIR = Path(__file__).parent / "files"
FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The directory to read MNIST from: argument, then $ADVGAP_DATA_DIR, then the bundled copy."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("ADVGAP_DATA_DIR")
    return Path(env) if env else BUNDLED_DIR


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip or raw) into a uint8 array; raise DataError naming the file on any defect."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: corrupt gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(f"{path}: bad IDX magic number (expected unsigned-byte data with 1 or 3 dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or oversized IDX file ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(split: str = "test", data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the `train` or `test` split."""
    if split not in ("train", "test"):
        raise DataError(f"unknown MNIST split {split!r} (use 'train' or 'test')")
    directory = resolve_data_dir(data_dir)
    images = read_idx(directory / FILES[(split, "images")])
    labels = read_idx(directory / FILES[(split, "labels")])
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{directory}: MNIST {split} images {images.shape} and labels {labels.shape} do not match")
    return images, labels
