import re

import numpy as np
import pytest

from advgap.cli import main, verify
from advgap.experiment import vnncomp
from advgap.verify.result import CheckResult, Verdict


def test_holds(tiny_benchmark, capsys):
    code = main(["verify", str(tiny_benchmark / "tiny.onnx"), str(tiny_benchmark / "holds.vnnlib"), "--timeout", "20"])
    out = capsys.readouterr().out
    assert (code, out.splitlines()[-1]) == (0, "holds")


def test_violated_writes_replayed_counterexample(tiny_benchmark, capsys):
    cex = tiny_benchmark / "cex.txt"
    args = ["verify", str(tiny_benchmark / "tiny.onnx"), str(tiny_benchmark / "violated.vnnlib")]
    code = main([*args, "--timeout", "20", "--counterexample", str(cex)])
    assert (code, capsys.readouterr().out.splitlines()[-1]) == (0, "violated")
    text = cex.read_text()
    assert text.startswith("((X_0 ") and text.endswith("))\n")
    values = dict(re.findall(r"\(([XY]_\d+) ([^()\s]+)\)", text))
    x = np.array([float(values["X_0"]), float(values["X_1"])])
    y = np.array([float(values["Y_0"]), float(values["Y_1"])])
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_allclose(y, [max(x[0] - x[1], 0), max(x[1] - x[0], 0) + 0.25], atol=1e-6)
    assert y[0] >= y[1] + 0.5 - 1e-6


@pytest.mark.parametrize("verdict", [Verdict.TIMEOUT, Verdict.UNKNOWN])
def test_unanswered_exits_1(tiny_benchmark, capsys, monkeypatch, verdict):
    monkeypatch.setattr(vnncomp, "check_property",
                        lambda net, prop, timeout, workers: CheckResult(verdict, timeout, "stub"))
    code = main(["verify", str(tiny_benchmark / "tiny.onnx"), str(tiny_benchmark / "holds.vnnlib")])
    assert (code, capsys.readouterr().out.splitlines()[-1]) == (1, verdict.value)


def test_remaining_time_is_passed_to_the_engine(tiny_benchmark, capsys, monkeypatch):
    seen = []

    def engine(net, prop, timeout, workers):
        seen.append(timeout)
        return CheckResult(Verdict.TIMEOUT, timeout, "stub")

    monkeypatch.setattr(vnncomp, "check_property", engine)
    main(["verify", str(tiny_benchmark / "tiny.onnx"), str(tiny_benchmark / "holds.vnnlib"), "--timeout", "10"])
    budget = 10.0 * (1 - verify.RESERVE_FRACTION) - verify.EXIT_RESERVE_S
    assert budget - 1.0 < seen[0] <= budget


@pytest.mark.parametrize(
    ("net", "prop", "message"),
    [
        ("tiny.onnx", "missing.vnnlib", "cannot read VNN-LIB file"),
        ("missing.onnx", "holds.vnnlib", "no such ONNX file"),
        ("tiny.onnx", "broken.vnnlib", r"broken.vnnlib, line 10: unexpected '\)'"),
        ("tiny.onnx", "wide.vnnlib", "has 3 inputs and 2 outputs"),
    ],
)
def test_bad_input_exits_2_without_traceback(tiny_benchmark, capsys, net, prop, message):
    (tiny_benchmark / "broken.vnnlib").write_text((tiny_benchmark / "holds.vnnlib").read_text() + ")")
    wide = (
        (tiny_benchmark / "holds.vnnlib")
        .read_text()
        .replace("(declare-const X_1 Real)", "(declare-const X_1 Real)\n(declare-const X_2 Real)")
    )
    (tiny_benchmark / "wide.vnnlib").write_text(wide + "(assert (<= X_2 1))(assert (>= X_2 0))")
    code = main(["verify", str(tiny_benchmark / net), str(tiny_benchmark / prop)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("advgap: error: ") and "Traceback" not in err
    assert re.search(message, err)


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    assert "exit codes: 0 proven answer" in capsys.readouterr().out
