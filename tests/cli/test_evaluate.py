import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from advgap.cli import main
from advgap.data import mnist_arrays
from advgap.formats.netfile import save_net
from advgap.verify.network import ReluNet


@pytest.fixture
def net_file(tmp_path):
    """A random 784-8-10 net: its clean accuracy is computed independently with numpy below."""
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(8, 784)), rng.normal(size=8)), (rng.normal(size=(10, 8)), np.zeros(10))]
    net = ReluNet.from_layers(layers)
    path = tmp_path / "net.npz"
    save_net(path, net, {"kind": "random"})
    return path, net


def test_evaluate_json(net_file, capsys):
    path, net = net_file
    assert main(["evaluate", "--model", str(path), "--fgsm", "0.1", "--json"]) == 0
    out = capsys.readouterr().out
    record = json.loads(out)
    assert out.count("\n") == 1
    assert set(record) == {"clean_accuracy", "fgsm_accuracy", "fgsm_delta", "n", "model"}
    x, y = mnist_arrays("test")
    assert record["n"] == 10000 and record["fgsm_delta"] == 0.1 and record["model"] == str(path)
    assert record["clean_accuracy"] == pytest.approx(np.mean(net.predict(x) == y), abs=2e-4)
    assert 0 <= record["fgsm_accuracy"] <= record["clean_accuracy"]


def test_evaluate_text(net_file, capsys):
    path, _ = net_file
    assert main(["evaluate", "--model", str(path)]) == 0
    out = capsys.readouterr().out
    assert "clean accuracy" in out and "FGSM δ=0.2" in out and "10000 MNIST test images" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fgsm", "1.5"], "FGSM δ must be in [0, 1]"),
        (["--model", "missing.npz"], "missing.npz: no such network file"),
    ],
)
def test_evaluate_bad_arguments(net_file, capsys, args, message):
    path, _ = net_file
    assert main(["evaluate", "--model", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advgap: error: ") and message in err


def test_truncated_data_file_is_one_error_line(net_file, tmp_path, shared_dir):
    data = tmp_path / "mnist"
    shutil.copytree(shared_dir / "mnist", data)
    images = data / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:50000])
    path, _ = net_file
    proc = subprocess.run(
        [sys.executable, "-m", "advgap", "evaluate", "--model", str(path), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("advgap: error: ") and str(images) in lines[0] and "truncated" in lines[0]
    assert "Traceback" not in proc.stderr
