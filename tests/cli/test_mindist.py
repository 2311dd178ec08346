"""`advgap mindist`: JSON rows, misclassified images skipped, bad input as one error line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from advgap.cli import main
from advgap.formats.netfile import save_net
from advgap.verify.network import ReluNet


def _tiny_mnist_net(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    net = ReluNet.from_layers([(rng.normal(scale=0.05, size=(8, 784)), rng.normal(scale=0.1, size=8)),
                               (rng.normal(size=(10, 8)), rng.normal(scale=0.1, size=10))])
    path = tmp_path / "tiny.npz"
    save_net(path, net, {"note": "test"})
    return path, net


def test_json_rows_have_the_documented_fields(tmp_path, capsys):
    path, _ = _tiny_mnist_net(tmp_path)
    assert main(["mindist", "--model", str(path), "--images", "0:4", "--json", "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        assert {"index", "label", "predicted", "target", "lower", "upper", "status", "seconds", "engine"} <= set(row)
        if row["status"] == "misclassified":
            assert row["predicted"] != row["label"] and row["lower"] is None
        else:
            assert row["status"] == "exact" and row["lower"] <= row["upper"] <= row["lower"] + 1e-3 + 1e-9
            assert row["target"] != row["label"] and row["engine"] == "native"


def test_per_target_distance_is_at_least_the_overall_one(tmp_path, capsys):
    path, _ = _tiny_mnist_net(tmp_path, seed=1)
    main(["mindist", "--model", str(path), "--images", "0:1", "--json", "--no-progress"])
    overall = json.loads(capsys.readouterr().out)
    if overall["status"] == "misclassified":
        return
    other = (overall["label"] + 1) % 10
    main(["mindist", "--model", str(path), "--images", "0:1", "--json", "--no-progress", "--target", str(other)])
    single = json.loads(capsys.readouterr().out)
    assert single["target"] == other
    assert single["upper"] is None or single["upper"] >= overall["lower"]


def test_bad_inputs_give_one_error_line_and_exit_2(tmp_path):
    path, _ = _tiny_mnist_net(tmp_path)
    nan_path = tmp_path / "nan.npz"
    np.savez(nan_path, W0=np.full((3, 784), np.nan), b0=np.zeros(3), W1=np.ones((10, 3)), b1=np.zeros(10))
    cases = [
        ["--model", str(tmp_path / "missing.npz")],
        ["--model", str(nan_path)],
        ["--model", str(path), "--target", "12"],
        ["--model", str(path), "--images", "0:x"],
        ["--model", str(path), "--images", "5:99999"],
        ["--model", str(path), "--tol", "2"],
    ]
    for extra in cases:
        proc = subprocess.run([sys.executable, "-m", "advgap", "mindist", "--no-progress", *extra],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().startswith("advgap: error:") and len(proc.stderr.strip().splitlines()) == 1
