"""Marabou (maraboupy, optional extra) as a second complete verifier: a baseline and a cross-check.

A property's terms are checked one Marabou query each (measured faster than one disjunction constraint on MNIST
784-50-10 nets), the term most nearly holding at the box centre first. Every query runs in a worker subprocess
(`advgap.verify.marabou_worker`, which builds the query from the ReluNet weights) that is killed when it overruns
its deadline, so the time limit holds even if Marabou ignores its own. A SAT point counts only after it
replays in float64 through the ReluNet; Marabou's points often lie exactly on a term's boundary, so when the
replay fails the term is asked once more with a small margin before the answer is given up as UNKNOWN.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from types import TracebackType

import numpy as np

from advgap.errors import SolverError, SpecError
from advgap.verify.bisection import min_distance_by_bisection
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult, Verdict
from advgap.verify.spec import Property, robustness_spec

log = logging.getLogger(__name__)

ENGINE = "marabou"
MISSING_EXTRA = "engine 'marabou' needs the optional extra: pip install 'advgap[marabou]'"
KILL_GRACE_S = 0.5  # how long past its deadline a query may run before the worker is killed
REPLAY_MARGIN = 1e-6  # logit margin of the second query when a SAT point fails the float64 replay


def require_maraboupy() -> None:
    """Raise SolverError with the install hint when maraboupy is not importable."""
    if importlib.util.find_spec("maraboupy") is None:
        raise SolverError(MISSING_EXTRA)


class MarabouWorker:
    """One Marabou subprocess reused across queries; killed (and restarted on the next query) when one overruns."""

    def __init__(self) -> None:
        require_maraboupy()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> MarabouWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        with theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "advgap.verify.marabou_worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        self._conn = Connection(ours.detach())
        return self._conn

    def solve(
        self, net: ReluNet, prop: Property, term: int, margin: float, deadline: float
    ) -> tuple[str, np.ndarray | None]:
        """Solve `prop`'s term `term` (tightened by `margin`) before `deadline` (perf_counter seconds).

        Returns Marabou's exit code ('sat', 'unsat', 'TIMEOUT', 'UNKNOWN', 'ERROR', ...) or 'killed'/'died ...',
        and the input point when 'sat'.
        """
        start = time.perf_counter()
        answer = self._ask(net, prop, term, margin, deadline)
        log.debug("marabou term %d, margin %g: %s in %.2f s", term, margin, answer[0], time.perf_counter() - start)
        return answer

    def _ask(
        self, net: ReluNet, prop: Property, term: int, margin: float, deadline: float
    ) -> tuple[str, np.ndarray | None]:
        conn = self._conn or self._start()
        remaining = deadline - time.perf_counter()
        t = prop.terms[term]
        try:
            conn.send((net.weights, net.biases, prop.lo, prop.hi, t.A, t.b - margin, max(1, math.floor(remaining))))
            if conn.poll(max(0.0, remaining) + KILL_GRACE_S):
                return conn.recv()
        except (EOFError, OSError):
            code = self._proc.poll() if self._proc is not None else None
            self._discard()
            return f"died (exit code {code})", None
        self._discard()
        return "killed", None

    def _discard(self) -> None:
        """Kill the worker process and forget it."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stop the worker: closing the socket ends it; kill it if it is busy."""
        if self._proc is not None and self._conn is not None:
            self._conn.close()
            self._conn = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(1.0)
        self._discard()


def _term_order(net: ReluNet, prop: Property) -> list[int]:
    """Term indices, the one closest to holding at the box centre first."""
    y = net.forward((prop.lo + prop.hi) / 2)
    slack = [float(np.max(t.A @ y - t.b)) for t in prop.terms]
    return sorted(range(len(prop.terms)), key=slack.__getitem__)


def check_with_worker(net: ReluNet, prop: Property, timeout: float, worker: MarabouWorker) -> CheckResult:
    """`marabou_check_property` on an existing worker (lets a bisection reuse one subprocess)."""
    if prop.lo.shape[0] != net.n_inputs:
        raise SpecError(f"property has {prop.lo.shape[0]} inputs, the network {net.n_inputs}")
    if any(t.A.ndim != 2 or t.A.shape[1] != net.n_outputs for t in prop.terms):
        raise SpecError(f"property terms must have {net.n_outputs} columns, one per network output")
    start = time.perf_counter()
    deadline = start + timeout
    open_terms: list[str] = []
    timed_out = ""  # how the time limit showed, once it did
    for k in _term_order(net, prop):
        name = prop.terms[k].name or f"term {k}"
        if time.perf_counter() >= deadline:
            timed_out = f"before {name}"
            break
        code, point = worker.solve(net, prop, k, 0.0, deadline)
        if code == "sat":
            found = prop.replay(net.forward, point)
            if found is None:
                code, point = worker.solve(net, prop, k, REPLAY_MARGIN, deadline)
                found = prop.replay(net.forward, point) if code == "sat" else None
            if found is not None:
                x, hit = found
                return CheckResult(
                    Verdict.COUNTEREXAMPLE, time.perf_counter() - start, ENGINE, x, hit, f"marabou sat on {name}"
                )
            if code in ("sat", "unsat"):
                open_terms.append(f"{name}: SAT point fails the float64 replay")
                continue
        if code == "unsat":
            continue
        if code in ("TIMEOUT", "killed"):
            timed_out = f"on {name}, " + ("worker killed" if code == "killed" else "marabou's own timeout")
            break
        open_terms.append(f"{name}: marabou {code}")
    seconds = time.perf_counter() - start
    if timed_out:
        return CheckResult(Verdict.TIMEOUT, seconds, ENGINE, detail=f"time limit {timeout:g} s reached {timed_out}")
    if open_terms:
        return CheckResult(Verdict.UNKNOWN, seconds, ENGINE, detail="; ".join(open_terms))
    return CheckResult(Verdict.ROBUST, seconds, ENGINE, detail=f"marabou unsat on {len(prop.terms)} term(s)")


def marabou_check_property(net: ReluNet, prop: Property, timeout: float = 60.0) -> CheckResult:
    """Decide `prop` on `net` with Marabou within `timeout` seconds (TIMEOUT beyond it)."""
    with MarabouWorker() as worker:
        return check_with_worker(net, prop, timeout, worker)


def marabou_min_linf_distance(
    net: ReluNet,
    x: np.ndarray,
    label: int,
    target: int | None = None,
    timeout: float = 60.0,
    tol: float = 1e-3,
    upper_hint: float | None = None,
) -> DistanceResult:
    """The study's method: bisection on δ with Marabou robustness queries, `timeout` seconds in all.

    `target` restricts the adversary to one class; `upper_hint` (e.g. an attack's δ) is queried first.
    """
    x = np.asarray(x, dtype=np.float64)
    targets = None if target is None else [target]
    term_targets = [t for t in range(net.n_outputs) if t != label] if target is None else [target]
    with MarabouWorker() as worker:

        def check(delta: float, remaining: float) -> CheckResult:
            prop = robustness_spec(x, label, delta, net.n_outputs, targets)
            return check_with_worker(net, prop, remaining, worker)

        return min_distance_by_bisection(
            check, x, tol=tol, timeout=timeout, engine=ENGINE, term_targets=term_targets, upper_hint=upper_hint
        )
