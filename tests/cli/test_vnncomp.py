import csv

import pytest

from advgap.cli import main


def test_runs_instances_and_compares_with_expected(tiny_benchmark, capsys):
    out = tiny_benchmark / "results.csv"
    args = ["vnncomp", str(tiny_benchmark), "--expected", str(tiny_benchmark / "expected.csv"), "--out", str(out)]
    code = main(args)
    stdout = capsys.readouterr().out
    assert code == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["network", "property", "result", "seconds"]
    assert [r[:3] for r in rows[1:]] == [
        ["tiny.onnx", "holds.vnnlib", "holds"],
        ["tiny.onnx", "violated.vnnlib", "violated"],
    ]
    assert all(0 < float(r[3]) < 30 for r in rows[1:])
    assert "property" in stdout and "other_2021_s" in stdout and "2.5" in stdout
    assert "solved 2, wrong 0, unsolved 0" in stdout


def test_wrong_answer_is_reported_and_exits_1(tiny_benchmark, capsys):
    expected = tiny_benchmark / "expected.csv"
    expected.write_text(expected.read_text().replace("holds.vnnlib,holds", "holds.vnnlib,violated"))
    code = main(["vnncomp", str(tiny_benchmark), "--expected", str(expected)])
    captured = capsys.readouterr()
    assert code == 1
    assert "solved 1, wrong 1, unsolved 0" in captured.out
    assert "WRONG: tiny.onnx holds.vnnlib: answered holds" in captured.err


def test_unreadable_property_is_an_error_result_not_a_crash(tiny_benchmark, capsys):
    (tiny_benchmark / "instances.csv").write_text("tiny.onnx,holds.vnnlib,30\ntiny.onnx,nothere.vnnlib,30\n")
    code = main(["vnncomp", str(tiny_benchmark)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["holds.vnnlib", "-", "holds"]
    assert lines[2].split()[:3] == ["nothere.vnnlib", "-", "error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tiny.onnx,holds.vnnlib\n", "instances.csv, line 1: expected network,property,timeout_s"),
        ("tiny.onnx,holds.vnnlib,-3\n", "line 1: timeout '-3' is not a positive number"),
    ],
)
def test_bad_instances_file_exits_2(tiny_benchmark, capsys, content, message):
    (tiny_benchmark / "instances.csv").write_text(content)
    assert main(["vnncomp", str(tiny_benchmark)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
