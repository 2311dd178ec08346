"""The MNIST conv nets of a public benchmark's shape (conv 32×2×2 on 28×28, 4×4 pooling, dense 1,152 → 10),
exported from torch: both import within 10 s and 2 GiB (onnxruntime's check included), their wide layers sparse."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import advgap

CHILD = """
import json, sys, time
from advgap.formats.onnx_import import load_onnx
start = time.monotonic()
net = load_onnx(sys.argv[1]).net
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.monotonic() - start, "hidden": list(net.hidden_sizes), "peak_gib": peak_kib / 2**20,
                  "sparse": [hasattr(w, "indptr") for w in net.weights]}))
"""


def export(pool: torch.nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 2), torch.nn.ReLU(), pool, torch.nn.Flatten(),
                              torch.nn.Linear(1152, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation; the new one needs onnxscript
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, input_names=["x"])
    return path


@pytest.mark.parametrize(("pool", "hidden"), [
    (torch.nn.AvgPool2d(4, 4), [32 * 27 * 27]),
    (torch.nn.MaxPool2d(4, 4), [32 * 27 * 27, 18432, 9216, 4608, 2304]),  # the conv ReLUs, then the max tree
])
def test_full_size_pooling_nets_import_within_10_s_and_2_gib(tmp_path, pool, hidden):
    path = export(pool, tmp_path / "pool.onnx")
    src = str(Path(advgap.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], env={**os.environ, "PYTHONPATH": src},
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])  # peak memory of the whole process, python and torch included
    assert report["hidden"] == hidden
    assert report["sparse"][: len(hidden)] == [True] * len(hidden)  # the convolution and every tree level: CSR
    assert report["seconds"] < 10 and report["peak_gib"] < 2
