"""Broken input files, each made in a test folder from a valid one: the shared set of the bad-input tests.

Every maker takes a folder and a defect name and returns the path to pass where the valid file would go.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
from onnx import numpy_helper

from advgap.data.mnist import FILES
from advgap.formats.netfile import save_net
from advgap.formats.nnet import write_nnet
from advgap.formats.onnx_export import to_onnx
from advgap.verify.network import ReluNet
from support.tiny_benchmark import HOLDS

# Defects every file kind has; network files also have "NaN weights", ONNX files "unsupported operator".
COMMON = ("empty", "truncated", "wrong magic", "directory")
NET_DEFECTS = (*COMMON, "NaN weights")
VNNLIB = HOLDS  # the tiny benchmark's property that holds
INSTANCES = "tiny.onnx,holds.vnnlib,30\n"
EXPECTED = "network,property,expected\ntiny.onnx,holds.vnnlib,holds\n"


def mnist_net() -> ReluNet:
    """A random 784-4-10 net: the shape every MNIST subcommand accepts."""
    rng = np.random.default_rng(0)
    return ReluNet.from_layers([(rng.normal(size=(4, 784)), rng.normal(size=4)),
                                (rng.normal(size=(10, 4)), rng.normal(size=10))])


def _write_valid_net(path: Path) -> None:
    net = mnist_net()
    if path.suffix == ".npz":
        save_net(path, net, {})
    elif path.suffix == ".onnx":
        path.write_bytes(to_onnx(net).SerializeToString())
    else:
        write_nnet(path, net)


def _nan_weights(path: Path) -> None:
    """The valid file of `path`'s format with NaN weights in its first layer."""
    if path.suffix == ".npz":
        net = mnist_net()
        np.savez(path, W0=np.full_like(net.weights[0], np.nan), b0=net.biases[0], W1=net.weights[1], b1=net.biases[1])
    elif path.suffix == ".onnx":
        model = to_onnx(mnist_net())
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((4, 784), np.nan, np.float32), "W0"))
        path.write_bytes(model.SerializeToString())
    else:
        _write_valid_net(path)
        lines = path.read_text().splitlines()
        lines[8] = "nan," + lines[8].split(",", 1)[1]  # the first weight row: after a comment and 7 header records
        path.write_text("\n".join(lines) + "\n")


def _unsupported_operator(path: Path) -> None:
    """A valid ONNX net with its ReLU replaced by a Sigmoid."""
    model = to_onnx(mnist_net())
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type = "Sigmoid"
    path.write_bytes(model.SerializeToString())


def _corrupt(path: Path, defect: str, valid: bytes) -> Path:
    """Write `path` as `valid` with a defect common to all file kinds."""
    if defect == "empty":
        path.write_bytes(b"")
    elif defect == "truncated":
        path.write_bytes(valid[: len(valid) // 2])
    elif defect == "wrong magic":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif defect == "directory":
        path.mkdir()
    else:
        raise ValueError(f"unknown defect {defect!r}")
    return path


def network(folder: Path, suffix: str, defect: str) -> Path:
    """A broken network file `net<suffix>` (`.npz`, `.onnx` or `.nnet`) in `folder`."""
    path = folder / f"broken{suffix}"
    if defect == "NaN weights":
        _nan_weights(path)
        return path
    if defect == "unsupported operator":
        _unsupported_operator(path)
        return path
    valid = folder / f"valid{suffix}"
    _write_valid_net(valid)
    return _corrupt(path, defect, valid.read_bytes())


def vnnlib(folder: Path, defect: str) -> Path:
    """A broken VNN-LIB property for a 2-input, 2-output net; "NaN" has a NaN bound."""
    path = folder / "broken.vnnlib"
    if defect == "NaN":
        path.write_text(VNNLIB.replace("(<= X_1 1)", "(<= X_1 nan)"))
        return path
    return _corrupt(path, defect, VNNLIB.encode())


def mnist_dir(folder: Path, shared_mnist: Path, defect: str) -> Path:
    """A copy of the MNIST folder (labels linked) whose two image files have the defect; "gzip bomb": each
    inflates to 64 MB, more than the official file."""
    folder.mkdir()
    for spec in FILES.values():
        target = folder / spec.gz_name
        if "labels" in spec.name:
            target.symlink_to(shared_mnist / spec.gz_name)
        elif defect == "gzip bomb":
            deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            chunk = bytes(1 << 20)
            target.write_bytes(b"".join(deflate.compress(chunk) for _ in range(64)) + deflate.flush())
        else:
            _corrupt(target, defect, gzip.compress(b"\x00\x00\x08\x03" + bytes(1000)))
    return folder


def csv(folder: Path, name: str, defect: str) -> Path:
    """A broken `instances.csv` or `expected.csv` (name) for the tiny benchmark."""
    valid = INSTANCES if name == "instances.csv" else EXPECTED
    path = folder / f"broken-{name}"
    if defect == "truncated":
        path.write_text(valid[: valid.index(",", valid.index("tiny")) + 3])
        return path
    return _corrupt(path, defect, valid.encode())


def output(folder: Path, defect: str, *, directory: bool = False) -> Path:
    """An output path that cannot be written: "wrong kind" (an existing directory where a file goes, or a file
    where a folder goes) or "under a file" (its parent is a regular file)."""
    if defect == "wrong kind":
        path = folder / "taken.npz"
        if directory:
            path.write_text("")
        else:
            path.mkdir()
        return path
    (folder / "plain-file").write_text("")
    return folder / "plain-file" / "out.npz"


OUTPUT_DEFECTS = ("wrong kind", "under a file")
VNNLIB_DEFECTS = (*COMMON, "NaN")
MNIST_DEFECTS = (*COMMON, "gzip bomb")
CSV_DEFECTS = COMMON
