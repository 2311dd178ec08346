"""`advgap evaluate --robust`: the table and JSON of verified robust accuracy, and one error line for bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from advgap.cli import main
from advgap.data import mnist_arrays
from advgap.experiment.robust import ATTACKS
from advgap.models.loader import load_network


def test_json_counts_over_all_selected_images(capsys):
    """Images 2..9 on the vanilla net: one misclassified, robust at 0.02 and mostly not at 0.04."""
    argv = ["evaluate", "--model", "vanilla", "--robust", "0.04,0.02", "--exact", "--images", "2:10", "--workers", "1",
            "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    record = json.loads(out)
    x, y = mnist_arrays("test")
    assert record["model"] == "vanilla" and record["images"] == [2, 10] and record["n"] == 8
    assert record["correct"] == int(np.sum(load_network("vanilla").net.predict(x[2:10]) == y[2:10])) == 7
    assert record["exact"] is True and record["timeout"] == 60 and "misclassified" in record["denominator"]
    assert record["engine_checks"] > 0
    assert [row["delta"] for row in record["radii"]] == [0.02, 0.04]
    for row in record["radii"]:
        images = row["images"]
        assert images["proven"] + images["unsettled"] == images["not_refuted"] <= record["correct"]
        assert all(images["proven"] <= images[a] <= record["correct"] for a in ATTACKS)
        assert row["accuracy"]["proven"] == images["proven"] / 8
    assert record["radii"][0]["images"]["proven"] > record["radii"][1]["images"]["not_refuted"]


def test_text_table_on_the_bundled_adversarial_net(capsys):
    assert main(["evaluate", "--model", "adversarial", "--robust", "0.1,0.2", "--exact", "--images", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model adversarial, MNIST test images 0:3:")
    assert "misclassified image counts as not robust" in lines[1]
    assert all(name in lines[2] for name in ("FGSM", "PGD", "FMN", "AutoAttack", "proven ≤ true ≤ not refuted"))
    assert lines[3].split()[0] == "0.1" and lines[4].split()[0] == "0.2"
    assert "≤ true ≤" in lines[3] and "no FAB-T (ART has none)" in lines[5]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--robust", "0.1,nan"], "radii must lie in (0, 1]"),
        (["--robust", "1.5"], "radii must lie in (0, 1]"),
        (["--robust", "-0.1"], "radii must lie in (0, 1]"),
        (["--robust", "0"], "radii must lie in (0, 1]"),
        (["--robust", "0.1,0.1"], "distinct"),
        (["--robust", "0.1,a"], "expected comma-separated radii"),
        (["--exact"], "--exact needs --robust"),
        (["--robust", "0.1", "--fgsm", "0.2"], "--fgsm and --robust exclude each other"),
        (["--images", "5"], "--images needs --robust"),
        (["--robust", "0.1", "--timeout", "5"], "--timeout needs --exact"),
        (["--robust", "0.1", "--exact", "--timeout", "0"], "--timeout must be a positive number of seconds"),
        (["--robust", "0.1", "--exact", "--timeout", "inf"], "--timeout must be a positive number of seconds"),
        (["--robust", "0.1", "--images", "5:3"], "need 0 <= A < B <= 10000"),
        (["--robust", "0.1", "--images", "x"], "expected N or A:B"),
        (["--robust", "0.1", "--workers", "0"], "--workers must be at least 1"),
        (["--robust", "0.1", "--model", "missing.npz"], "missing.npz"),
    ],
)
def test_bad_arguments_are_one_error_line(args, message, capsys):
    assert main(["evaluate", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("advgap: error: ") and message in lines[0], captured.err


def test_the_cli_and_the_package_do_not_import_art():
    code = ("import sys, advgap; from advgap.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('art', 'advgap.experiment.robust') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
