"""A tiny benchmark directory: a 2-2-2 ONNX net, a property that holds, one that is violated, the CSV files."""

from pathlib import Path

import pytest

from support.tiny_benchmark import HOLDS, VIOLATED, write_net


@pytest.fixture
def tiny_benchmark(tmp_path: Path) -> Path:
    write_net(tmp_path / "tiny.onnx")
    (tmp_path / "holds.vnnlib").write_text(HOLDS)
    (tmp_path / "violated.vnnlib").write_text(VIOLATED)
    (tmp_path / "instances.csv").write_text("tiny.onnx,holds.vnnlib,30\ntiny.onnx,violated.vnnlib,30\n")
    (tmp_path / "expected.csv").write_text(
        "network,property,expected,timeout_s,other_2021_s\n"
        "tiny.onnx,holds.vnnlib,holds,30,1.5\n"
        "tiny.onnx,violated.vnnlib,violated,30,2.5\n"
    )
    return tmp_path
