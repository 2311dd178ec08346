import time

import numpy as np
import pytest

from advgap.errors import DataError, SpecError
from advgap.experiment import vnncomp
from advgap.experiment.vnncomp import (
    Answer,
    Instance,
    InstanceResult,
    check_dimensions,
    comparison_table,
    read_expected,
    read_instances,
    solve,
    summarize,
)
from advgap.formats.network import Network
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, Verdict
from advgap.verify.spec import Property, Term

NET = ReluNet.from_layers([(np.eye(2), np.zeros(2))])
PROP = Property(np.zeros(2), np.ones(2), (Term(np.array([[-1.0, 1.0]]), np.array([-0.5]), "y0 >= y1 + 0.5"),))


def result(prop, answer, seconds=1.0):
    return InstanceResult(Instance("n.onnx", prop, 10.0), Answer(answer), seconds)


def test_counterexample_failing_replay_is_unknown(monkeypatch):
    x = np.array([1.0, 0.0])
    monkeypatch.setattr(
        vnncomp, "check_property",
        lambda net, prop, timeout, workers: CheckResult(Verdict.COUNTEREXAMPLE, 0.1, "stub", x, 0),
    )
    honest = solve(Network(NET, NET.forward, "net", (NET.n_inputs,)), [PROP], time.monotonic() + 5)
    assert honest.answer is Answer.VIOLATED and np.array_equal(honest.y, [1.0, 0.0])
    lying = solve(Network(NET, lambda v: np.array([0.0, 1.0]), "net", (NET.n_inputs,)), [PROP], time.monotonic() + 5)
    assert lying.answer is Answer.UNKNOWN and "failed replay" in lying.detail


def test_no_time_left_is_a_timeout_without_calling_the_engine(monkeypatch):
    monkeypatch.setattr(vnncomp, "check_property", None)
    network = Network(NET, NET.forward, "net", (NET.n_inputs,))
    assert solve(network, [PROP], time.monotonic() - 1).answer is Answer.TIMEOUT


def test_a_property_of_several_boxes_is_violated_in_the_box_that_holds_a_counterexample():
    """y = x on [0, 1]²: the term y0 >= y1 + 0.5 has no solution in the box x0 <= 0.4, one in x0 >= 0.6."""
    network = Network(NET, NET.forward, "net", (NET.n_inputs,))
    left = Property(np.zeros(2), np.array([0.4, 1.0]), PROP.terms)
    right = Property(np.array([0.6, 0.0]), np.ones(2), PROP.terms)
    assert solve(network, [left], time.monotonic() + 10).answer is Answer.HOLDS
    found = solve(network, [left, right], time.monotonic() + 10)
    assert found.answer is Answer.VIOLATED and found.detail.startswith("case 2 of 2: ")
    assert right.violated_by(found.x, NET.forward(found.x)) == 0
    low = Property(np.zeros(2), np.array([0.4, 1.0]), PROP.terms)
    both = solve(network, [left, low], time.monotonic() + 10)
    assert both.answer is Answer.HOLDS and both.detail == "all 2 cases hold"


def test_undecided_cases_are_retried_with_the_time_left(monkeypatch):
    calls = []

    def engine(net, prop, timeout, workers):
        calls.append(timeout)
        verdict = Verdict.TIMEOUT if len(calls) == 1 else Verdict.ROBUST
        return CheckResult(verdict, 0.0, "stub")

    monkeypatch.setattr(vnncomp, "check_property", engine)
    network = Network(NET, NET.forward, "net", (NET.n_inputs,))
    outcome = solve(network, [PROP, PROP], time.monotonic() + 10)
    assert outcome.answer is Answer.HOLDS and len(calls) == 3
    assert calls[0] == pytest.approx(5, abs=0.5) and calls[2] == pytest.approx(10, abs=0.5)


def test_dimension_mismatch():
    wide = Property(np.zeros(3), np.ones(3), PROP.terms)
    with pytest.raises(SpecError, match=r"p\.vnnlib has 3 inputs and 2 outputs, net has 2 and 2"):
        check_dimensions(Network(NET, NET.forward, "net", (NET.n_inputs,)), wide, "p.vnnlib")


def test_summary_counts_solved_wrong_unsolved_and_unchecked():
    expected = {
        ("n.onnx", p): vnncomp.Expected(a, {"x_s": "1"})
        for p, a in [("a", "holds"), ("b", "violated"), ("c", "holds"), ("d", "unknown")]
    }
    results = [result("a", "holds"), result("b", "holds"), result("c", "timeout"), result("d", "violated")]
    summary = summarize(results, expected)
    assert (summary.solved, summary.unsolved, summary.unchecked) == (1, 1, 1)
    assert [r.instance.property for r in summary.wrong] == ["b"]
    table = comparison_table(results, expected).splitlines()
    assert table[0].split() == ["property", "expected", "ours", "ours_s", "x_s"]
    assert table[2].split() == ["b", "violated", "holds", "1.0", "1"]


def test_csv_readers(tmp_path):
    inst = tmp_path / "i.csv"
    inst.write_text("net.onnx, p.vnnlib ,120\n\n")
    assert read_instances(inst) == [Instance("net.onnx", "p.vnnlib", 120.0)]
    exp = tmp_path / "e.csv"
    exp.write_text("network,property,expected,a_s\nnet.onnx,p.vnnlib,holds,3.5\n")
    assert read_expected(exp)[("net.onnx", "p.vnnlib")] == vnncomp.Expected("holds", {"a_s": "3.5"})
    exp.write_text("net,prop,answer\n")
    with pytest.raises(DataError, match="header must start with network,property,expected"):
        read_expected(exp)
    exp.write_text("network,property,expected,a_s\nnet.onnx,p.vnnlib,holds\n")
    with pytest.raises(DataError, match="line 2: expected 4 columns, found 3"):
        read_expected(exp)
    with pytest.raises(DataError, match="cannot read"):
        read_instances(tmp_path / "none.csv")
