"""Answering VNN-COMP instances: one property on one network within a deadline, and whole benchmark runs.

Answers use VNN-COMP's words: `holds` (proven: no counterexample), `violated` (a counterexample that replays
through the original model), `timeout`, `unknown`, `error` (the instance could not be read).
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from advgap.errors import AdvgapError, DataError, SpecError
from advgap.formats.network import Network
from advgap.formats.vnnlib import ParseTimeout, read_vnnlib
from advgap.models.loader import load_network
from advgap.verify.api import check_property
from advgap.verify.result import Verdict
from advgap.verify.spec import Property

log = logging.getLogger(__name__)


class Answer(Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"
    ERROR = "error"

    @property
    def proven(self) -> bool:
        return self in (Answer.HOLDS, Answer.VIOLATED)


@dataclass(frozen=True)
class Outcome:
    """The answer to one property; for `violated`, the counterexample x and its replayed outputs y."""

    answer: Answer
    detail: str = ""
    x: np.ndarray | None = None
    y: np.ndarray | None = None


@dataclass(frozen=True)
class Instance:
    network: str
    property: str
    timeout: float


@dataclass(frozen=True)
class InstanceResult:
    instance: Instance
    answer: Answer
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class Expected:
    """A row of expected.csv: the agreed answer and the other columns (e.g. 2021 entrants' seconds) verbatim."""

    answer: str
    columns: dict[str, str] = field(default_factory=dict)


def check_dimensions(network: Network, prop: Property, prop_source: str) -> None:
    """SpecError unless the property's X and Y variables match the network's inputs and outputs."""
    n_y = prop.terms[0].A.shape[1]
    if prop.lo.size != network.net.n_inputs or n_y != network.net.n_outputs:
        raise SpecError(
            f"{prop_source} has {prop.lo.size} inputs and {n_y} outputs, "
            f"{network.source} has {network.net.n_inputs} and {network.net.n_outputs}"
        )


def answer(network: Network, prop_path: str | Path, deadline: float, workers: int = 1) -> Outcome:
    """Read the property at `prop_path` and answer it on `network` by `deadline` (time.monotonic()) with `workers`
    processes; reading the file counts against the deadline. SpecError if the file is malformed or does not fit the
    network."""
    try:
        cases = read_vnnlib(prop_path, deadline)
    except ParseTimeout as exc:
        return Outcome(Answer.TIMEOUT, f"{prop_path}: {exc} while reading the property")
    for prop in cases:
        check_dimensions(network, prop, str(prop_path))
    return solve(network, cases, deadline, workers)


def solve(network: Network, cases: Sequence[Property], deadline: float, workers: int = 1) -> Outcome:
    """Answer the property made of `cases` (violated when any case is) on `network` by `deadline`.

    Each case first gets an equal share of the time left; cases left undecided are then tried again, one after the
    other, with all the time that remains. Counterexamples are replayed by `network`.
    """
    if len(cases) == 1:
        return _solve_case(network, cases[0], deadline, workers)
    undecided: list[tuple[int, Outcome]] = []
    for i, prop in enumerate(cases):
        share = (deadline - time.monotonic()) / (len(cases) - i)
        outcome = _solve_case(network, prop, time.monotonic() + share, workers)
        if outcome.answer is Answer.VIOLATED:
            return _in_case(outcome, i, len(cases))
        if outcome.answer is not Answer.HOLDS:
            undecided.append((i, outcome))
    for at, (i, _) in enumerate(undecided):
        if time.monotonic() >= deadline:
            break
        outcome = _solve_case(network, cases[i], deadline, workers)
        if outcome.answer is Answer.VIOLATED:
            return _in_case(outcome, i, len(cases))
        undecided[at] = (i, outcome)
    still = [(i, o) for i, o in undecided if o.answer is not Answer.HOLDS]
    if not still:
        return Outcome(Answer.HOLDS, f"all {len(cases)} cases hold")
    i, outcome = next(((i, o) for i, o in still if o.answer is Answer.UNKNOWN), still[0])
    return _in_case(outcome, i, len(cases))


def _in_case(outcome: Outcome, index: int, count: int) -> Outcome:
    return Outcome(outcome.answer, f"case {index + 1} of {count}: {outcome.detail}", outcome.x, outcome.y)


def _solve_case(network: Network, prop: Property, deadline: float, workers: int) -> Outcome:
    """Answer one case (an input box and its terms) by `deadline`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return Outcome(Answer.TIMEOUT, "no time left after loading")
    result = check_property(network.net, prop, timeout=remaining, workers=workers)
    detail = f"{result.engine}: {result.detail}" if result.detail else result.engine
    if result.verdict is Verdict.ROBUST:
        return Outcome(Answer.HOLDS, detail)
    if result.verdict is Verdict.TIMEOUT:
        return Outcome(Answer.TIMEOUT, detail)
    if result.verdict is Verdict.UNKNOWN:
        return Outcome(Answer.UNKNOWN, detail)
    x = result.counterexample
    y = network.replay(x)
    tol = network.replay_rtol * max(1.0, float(np.max(np.abs(y))))
    hit = prop.violated_by(x, y, tol)
    if hit is None:
        log.warning("counterexample for %r does not replay through %s", prop.terms[result.term].name, network.source)
        return Outcome(Answer.UNKNOWN, f"{detail}; counterexample failed replay through {network.source}")
    return Outcome(Answer.VIOLATED, f"{detail}; term {prop.terms[hit].name}", x, y)


def read_instances(path: str | Path) -> list[Instance]:
    """Rows `network,property,timeout_s` (no header) of a VNN-COMP instances.csv."""
    instances = []
    for lineno, row in _csv_rows(path):
        if len(row) != 3:
            raise DataError(f"{path}, line {lineno}: expected network,property,timeout_s")
        instances.append(Instance(row[0].strip(), row[1].strip(), _seconds(row[2], path, lineno)))
    if not instances:
        raise DataError(f"{path}: no instances")
    return instances


def read_expected(path: str | Path) -> dict[tuple[str, str], Expected]:
    """expected.csv keyed by (network, property): header `network,property,expected,...`."""
    rows = list(_csv_rows(path))
    if not rows or [c.strip() for c in rows[0][1][:3]] != ["network", "property", "expected"]:
        raise DataError(f"{path}: header must start with network,property,expected")
    header = [c.strip() for c in rows[0][1]]
    expected = {}
    for lineno, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}, line {lineno}: expected {len(header)} columns, found {len(row)}")
        values = [c.strip() for c in row]
        expected[(values[0], values[1])] = Expected(values[2], dict(zip(header[3:], values[3:], strict=True)))
    return expected


def run_instances(directory: str | Path, instances: Iterable[Instance], workers: int = 1) -> Iterator[InstanceResult]:
    """Answer each instance (paths relative to `directory`) within its timeout on `workers` processes; each network
    is loaded once.

    Seconds count from reading the property to the replayed answer; network loading is not counted.
    """
    directory = Path(directory)
    networks: dict[str, Network | AdvgapError] = {}
    for inst in instances:
        if inst.network not in networks:
            try:
                networks[inst.network] = load_network(directory / inst.network)
            except AdvgapError as exc:
                log.warning("%s", exc)
                networks[inst.network] = exc
        start = time.monotonic()
        network = networks[inst.network]
        if isinstance(network, AdvgapError):
            outcome = Outcome(Answer.ERROR, str(network))
        else:
            try:
                outcome = answer(network, directory / inst.property, start + inst.timeout, workers)
            except AdvgapError as exc:
                log.warning("%s", exc)
                outcome = Outcome(Answer.ERROR, str(exc))
        yield InstanceResult(inst, outcome.answer, time.monotonic() - start, outcome.detail)


@dataclass(frozen=True)
class Summary:
    solved: int
    wrong: tuple[InstanceResult, ...]
    unsolved: int
    unchecked: int  # proven answers where expected.csv has no proven answer


def summarize(results: Iterable[InstanceResult], expected: dict[tuple[str, str], Expected]) -> Summary:
    """Count our answers against the expected ones; a proven answer contradicting a proven expectation is wrong."""
    solved = unsolved = unchecked = 0
    wrong = []
    for r in results:
        exp = expected.get((r.instance.network, r.instance.property))
        known = exp is not None and exp.answer in (Answer.HOLDS.value, Answer.VIOLATED.value)
        if not r.answer.proven:
            unsolved += 1
        elif not known:
            unchecked += 1
        elif exp.answer == r.answer.value:
            solved += 1
        else:
            wrong.append(r)
    return Summary(solved, tuple(wrong), unsolved, unchecked)


def comparison_table(results: Iterable[InstanceResult], expected: dict[tuple[str, str], Expected]) -> str:
    """A fixed-width table: property, expected, ours, our seconds, then expected.csv's other columns."""
    results = list(results)
    extra = list(next(iter(expected.values())).columns) if expected else []
    with_network = len({r.instance.network for r in results}) > 1
    rows = [["network"] * with_network + ["property", "expected", "ours", "ours_s", *extra]]
    for r in results:
        exp = expected.get((r.instance.network, r.instance.property), Expected("-"))
        rows.append(
            [r.instance.network] * with_network
            + [r.instance.property, exp.answer, r.answer.value, f"{r.seconds:.1f}"]
            + [exp.columns.get(c, "-") for c in extra]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _csv_rows(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if row and any(c.strip() for c in row):
            yield lineno, row


def _seconds(text: str, path: str | Path, lineno: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise DataError(f"{path}, line {lineno}: timeout {text.strip()!r} is not a positive number of seconds")
    return value
