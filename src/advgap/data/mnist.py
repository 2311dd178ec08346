"""MNIST from IDX files (gzip or raw): parsing, official checksums, shapes, and float arrays for torch.

Search order for the directory holding the four files: the `data_dir` argument (CLI `--data-dir`), the environment
variable `ADVGAP_DATA_DIR`, then the copy bundled with the package (CC BY-SA 3.0, see files/SOURCE.txt).
In that directory each file may be gzip-compressed (`t10k-images-idx3-ubyte.gz`, preferred) or raw
(`t10k-images-idx3-ubyte`); the md5 of whichever is found is checked against the official value. No file is read
or decompressed beyond the size of the official one, so a gzip bomb costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advgap.errors import DataError

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).parent / "files"
SPLITS = ("train", "test")
IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 64 << 20  # read_idx's limit on a file's uncompressed size; the largest MNIST file has 47 MB


@dataclass(frozen=True)
class MnistFile:
    """One of the four official files: its name (without `.gz`), IDX magic number, shape and md5s."""

    name: str
    magic: int
    shape: tuple[int, ...]
    md5_gz: str
    md5_raw: str

    @property
    def gz_name(self) -> str:
        return f"{self.name}.gz"

    @property
    def raw_size(self) -> int:
        """Bytes of the uncompressed file: IDX header and data."""
        return 4 + 4 * len(self.shape) + math.prod(self.shape)


FILES: dict[tuple[str, str], MnistFile] = {
    ("train", "images"): MnistFile(
        "train-images-idx3-ubyte",
        0x0803,
        (60000, IMAGE_SIDE, IMAGE_SIDE),
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    ("train", "labels"): MnistFile(
        "train-labels-idx1-ubyte",
        0x0801,
        (60000,),
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    ("test", "images"): MnistFile(
        "t10k-images-idx3-ubyte",
        0x0803,
        (10000, IMAGE_SIDE, IMAGE_SIDE),
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    ("test", "labels"): MnistFile(
        "t10k-labels-idx1-ubyte",
        0x0801,
        (10000,),
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The directory to read MNIST from: argument, then $ADVGAP_DATA_DIR, then the bundled copy."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("ADVGAP_DATA_DIR")
    return Path(env) if env else BUNDLED_DIR


def md5_of(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_idx(raw: bytes, source: Path) -> np.ndarray:
    """Parse uncompressed IDX bytes (unsigned-byte data, 1 to 3 dimensions) into a read-only uint8 array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] not in (1, 2, 3):
        raise DataError(f"{source}: bad IDX magic number {raw[:4].hex() or 'none'} (expected 0x0000080[123])")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataError(f"{source}: truncated or oversized IDX file ({len(raw)} bytes, header says {expected})")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    array.setflags(write=False)
    return array


def _file_bytes(path: Path, limit: int) -> tuple[bytes, bytes]:
    """The bytes of `path` as stored and decompressed (identical for a raw file); DataError, without reading or
    decompressing it all, if either would exceed `limit` bytes."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        size = path.stat().st_size
        if size > limit + (limit >> 10) + 64:  # gzip adds at most ~0.03% to incompressible data
            raise DataError(f"{path}: {size} bytes, more than an IDX file of {limit} bytes can take")
        stored = path.read_bytes()
        if stored[:2] != _GZIP_MAGIC:
            return stored, stored
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflate.decompress(stored, limit + 1)
    except (OSError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if len(raw) > limit:
        raise DataError(f"{path}: decompresses to more than {limit} bytes, the size of the IDX file expected")
    if not inflate.eof:
        raise DataError(f"{path}: corrupt or truncated gzip data (the stream ends early)")
    if inflate.unused_data:
        raise DataError(f"{path}: corrupt gzip data ({len(inflate.unused_data)} bytes after the end of the stream)")
    return stored, raw


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzip or raw, at most MAX_IDX_BYTES uncompressed) into a uint8 array; raise DataError
    naming the file on any defect."""
    path = Path(path)
    return parse_idx(_file_bytes(path, MAX_IDX_BYTES)[1], path)


def locate(directory: Path, spec: MnistFile) -> Path:
    """The file for `spec` in `directory`: the `.gz` if present, else the raw one."""
    for name in (spec.gz_name, spec.name):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory / spec.gz_name}: file not found (nor uncompressed {spec.name})")


def _load_file(directory: Path, spec: MnistFile) -> np.ndarray:
    """Read, parse and check one official file: magic number, shape, then md5 of the bytes as stored."""
    path = locate(directory, spec)
    stored, raw = _file_bytes(path, spec.raw_size)
    array = parse_idx(raw, path)
    magic = int.from_bytes(raw[:4], "big")
    if magic != spec.magic:
        raise DataError(f"{path}: IDX magic number {magic:#010x}, expected {spec.magic:#010x} for {spec.name}")
    if array.shape != spec.shape:
        raise DataError(f"{path}: shape {array.shape}, expected {spec.shape}")
    compressed = stored[:2] == _GZIP_MAGIC
    expected_md5 = spec.md5_gz if compressed else spec.md5_raw
    actual_md5 = hashlib.md5(stored).hexdigest()
    if actual_md5 != expected_md5:
        kind = "gzip" if compressed else "uncompressed"
        raise DataError(f"{path}: md5 {actual_md5} differs from the official {kind} md5 {expected_md5}")
    log.info("read %s (%s, md5 ok)", path, "x".join(map(str, array.shape)))
    return array


def load_mnist(split: str = "test", data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) uint8 of the `train` (N=60000) or `test` (N=10000) split."""
    if split not in SPLITS:
        raise DataError(f"unknown MNIST split {split!r} (use 'train' or 'test')")
    directory = resolve_data_dir(data_dir)
    images = _load_file(directory, FILES[(split, "images")])
    labels = _load_file(directory, FILES[(split, "labels")])
    return images, labels


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) as float32 pixels in [0, 1], flattened to (N, 784)."""
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)


def mnist_arrays(split: str = "test", data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs as float32 (N, 784) in [0, 1] and labels as int64 (N,): what training and attacks consume."""
    images, labels = load_mnist(split, data_dir)
    return to_unit_float(images), labels.astype(np.int64)
