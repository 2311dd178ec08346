"""The MNIST conv nets of a public benchmark's shape (conv 32×2×2 on 28×28, 4×4 pooling, dense 1,152 → 10),
exported from torch: the average-pooling one imports within 10 s and 2 GiB, the max-pooling one is refused in one
line because its exact dense form would not fit."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import advgap
from advgap.errors import ModelFormatError
from advgap.formats.onnx_import import load_onnx

CHILD = """
import json, sys, time
from advgap.formats.onnx_import import load_onnx
start = time.monotonic()
net = load_onnx(sys.argv[1]).net
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.monotonic() - start, "hidden": list(net.hidden_sizes), "peak_gib": peak_kib / 2**20}))
"""


def export(pool: torch.nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 2), torch.nn.ReLU(), pool, torch.nn.Flatten(),
                              torch.nn.Linear(1152, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation; the new one needs onnxscript
        torch.onnx.export(net, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, input_names=["x"])
    return path


def test_average_pooling_net_imports_within_10_s_and_2_gib(tmp_path):
    path = export(torch.nn.AvgPool2d(4, 4), tmp_path / "avgpool.onnx")
    src = str(Path(advgap.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], env={**os.environ, "PYTHONPATH": src},
                          capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.splitlines()[-1])  # peak memory of the whole process, python and torch included
    assert report["hidden"] == [32 * 27 * 27]
    assert report["seconds"] < 10 and report["peak_gib"] < 2


def test_max_pooling_net_too_large_for_the_dense_form_is_refused_in_one_line(tmp_path):
    path = export(torch.nn.MaxPool2d(4, 4), tmp_path / "maxpool.onnx")
    with pytest.raises(ModelFormatError) as caught:
        load_onnx(path)
    assert "\n" not in str(caught.value)
    assert caught.match(r"maxpool\.onnx: node '[^']+' \(MaxPool\): its dense form needs 3\.20 GiB \(3\.34 GiB with "
                        r"the layers before it\), limit 2\.00 GiB: too large for the dense verifier$")
