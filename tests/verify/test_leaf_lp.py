"""Leaf LPs run without presolve; when HiGHS then ends undecided (status Unknown, seen on the adversarial study
net), the LP is solved again with presolve instead of failing the search."""

from __future__ import annotations

import highspy
import pytest

from advgap.errors import SolverError
from advgap.verify.milp import _solve_leaf


class _Stub:
    """A HiGHS stand-in that ends with `first` until presolve is switched on, then with `then`."""

    def __init__(self, first: highspy.HighsModelStatus, then: highspy.HighsModelStatus):
        self.first, self.then, self.presolve, self.runs = first, then, "off", 0

    def setOptionValue(self, name: str, value: str) -> None:
        if name == "presolve":
            self.presolve = value

    def clearSolver(self) -> None:
        pass

    def run(self) -> highspy.HighsStatus:
        self.runs += 1
        return highspy.HighsStatus.kOk

    def getModelStatus(self) -> highspy.HighsModelStatus:
        return self.then if self.presolve == "on" else self.first

    def getInfo(self) -> object:
        return type("Info", (), {"objective_function_value": 0.25})()

    def modelStatusToString(self, status: highspy.HighsModelStatus) -> str:
        return str(status)


def test_an_undecided_leaf_lp_is_solved_again_with_presolve():
    stub = _Stub(highspy.HighsModelStatus.kUnknown, highspy.HighsModelStatus.kOptimal)
    assert _solve_leaf(stub) == 0.25
    assert stub.runs == 2 and stub.presolve == "on"


def test_a_decided_leaf_lp_runs_once():
    stub = _Stub(highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kOptimal)
    assert _solve_leaf(stub) == float("inf")
    assert stub.runs == 1


def test_a_leaf_lp_undecided_twice_is_an_error():
    stub = _Stub(highspy.HighsModelStatus.kUnknown, highspy.HighsModelStatus.kUnknown)
    with pytest.raises(SolverError, match="ended with"):
        _solve_leaf(stub)
