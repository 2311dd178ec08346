"""Marabou (maraboupy, optional extra) as a second complete verifier: a baseline and a cross-check.

The query is built directly from the ReluNet weights: one variable per input, per pre- and post-activation and
per output, an equation per affine row, a ReLU constraint per hidden neuron, the box as input bounds. A property's
terms are checked one query each (measured faster than one disjunction constraint on MNIST 784-50-10 nets),
most nearly violated term at the box centre first. Every query runs in a worker subprocess that is killed when it
overruns its deadline, so the time limit holds even if Marabou ignores its own. A SAT point counts only after it
replays in float64 through the ReluNet; Marabou's points often lie exactly on a term's boundary, so when the
replay fails the term is asked once more with a small margin before the answer is given up as UNKNOWN.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import multiprocessing
import time
from multiprocessing.connection import Connection
from types import TracebackType

import numpy as np

from advgap.errors import SolverError
from advgap.verify.bisection import min_distance_by_bisection
from advgap.verify.network import ReluNet
from advgap.verify.result import CheckResult, DistanceResult, Verdict
from advgap.verify.spec import Property, robustness_spec

log = logging.getLogger(__name__)

ENGINE = "marabou"
MISSING_EXTRA = "engine 'marabou' needs the optional extra: pip install 'advgap[marabou]'"
KILL_GRACE_S = 0.5  # how long past its deadline a query may run before the worker is killed
REPLAY_MARGIN = 1e-6  # logit margin of the second query when a SAT point fails the float64 replay

# A query sent to the worker: weights, biases, input box, one term's rows A @ y <= b, Marabou's own timeout (s).
_Query = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]


def require_maraboupy() -> None:
    """Raise SolverError with the install hint when maraboupy is not importable."""
    if importlib.util.find_spec("maraboupy") is None:
        raise SolverError(MISSING_EXTRA)


def _solve_query(query: _Query) -> tuple[str, np.ndarray | None]:
    """Build and solve one Marabou query (runs in the worker); return Marabou's exit code and the SAT input."""
    from maraboupy import MarabouCore

    weights, biases, lo, hi, rows, rhs, timeout_s = query
    n_inputs = lo.size
    ipq = MarabouCore.InputQuery()
    ipq.setNumberOfVariables(n_inputs + 2 * sum(w.shape[0] for w in weights[:-1]) + weights[-1].shape[0])
    for i in range(n_inputs):
        ipq.markInputVariable(i, i)
        ipq.setLowerBound(i, float(lo[i]))
        ipq.setUpperBound(i, float(hi[i]))
    prev, free = list(range(n_inputs)), n_inputs
    last = len(weights) - 1
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        pre = list(range(free, free + w.shape[0]))
        free += w.shape[0]
        for j, var in enumerate(pre):
            eq = MarabouCore.Equation(MarabouCore.Equation.EQ)
            for i in np.flatnonzero(w[j]):
                eq.addAddend(float(w[j, i]), prev[i])
            eq.addAddend(-1.0, var)
            eq.setScalar(-float(b[j]))
            ipq.addEquation(eq)
        if k == last:
            prev = pre
            break
        post = list(range(free, free + w.shape[0]))
        free += w.shape[0]
        for p, q in zip(pre, post, strict=True):
            MarabouCore.addReluConstraint(ipq, p, q)
            ipq.setLowerBound(q, 0.0)
        prev = post
    for j, var in enumerate(prev):
        ipq.markOutputVariable(var, j)
    for r in range(rows.shape[0]):
        eq = MarabouCore.Equation(MarabouCore.Equation.LE)
        for j in np.flatnonzero(rows[r]):
            eq.addAddend(float(rows[r, j]), prev[j])
        eq.setScalar(float(rhs[r]))
        ipq.addEquation(eq)
    options = MarabouCore.Options()
    options._timeoutInSeconds = timeout_s
    options._verbosity = 0
    code, values, _ = MarabouCore.solve(ipq, options, "")
    if code != "sat":
        return code, None
    return code, np.array([values[i] for i in range(n_inputs)], dtype=np.float64)


def _serve(conn: Connection) -> None:
    """Worker loop: answer queries until the pipe closes or a None arrives."""
    while True:
        try:
            query = conn.recv()
        except EOFError:
            return
        if query is None:
            return
        conn.send(_solve_query(query))


class MarabouWorker:
    """One Marabou subprocess reused across queries; killed (and restarted on the next query) when one overruns."""

    def __init__(self) -> None:
        require_maraboupy()
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> MarabouWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def solve(
        self, net: ReluNet, prop: Property, term: int, margin: float, deadline: float
    ) -> tuple[str, np.ndarray | None]:
        """Solve `prop`'s term `term` (tightened by `margin`) before `deadline` (perf_counter seconds).

        Returns Marabou's exit code ('sat', 'unsat', 'TIMEOUT', 'UNKNOWN', 'ERROR', ...) or 'killed'/'died', and
        the input point when 'sat'.
        """
        if self._proc is None:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), daemon=True, name="advgap-marabou")
            self._proc.start()
            child.close()
        assert self._conn is not None
        remaining = deadline - time.perf_counter()
        t = prop.terms[term]
        self._conn.send((net.weights, net.biases, prop.lo, prop.hi, t.A, t.b - margin, max(1, math.floor(remaining))))
        try:
            if self._conn.poll(max(0.0, remaining) + KILL_GRACE_S):
                return self._conn.recv()
        except EOFError:
            code = self._proc.exitcode
            self._discard()
            return f"died (exit code {code})", None
        self._discard()
        return "killed", None

    def _discard(self) -> None:
        """Kill the worker process and forget it."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc, self._conn = None, None

    def close(self) -> None:
        """Stop the worker (politely, then by force)."""
        if self._proc is not None and self._conn is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self._proc.join(1.0)
        self._discard()


def _replay(net: ReluNet, prop: Property, point: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The point clipped into the box and the index of a term it satisfies in float64, or None."""
    x = np.clip(point, prop.lo, prop.hi)
    hit = prop.violated_by(x, net.forward(x))
    return None if hit is None else (x, hit)


def _term_order(net: ReluNet, prop: Property) -> list[int]:
    """Term indices, the one closest to holding at the box centre first."""
    y = net.forward((prop.lo + prop.hi) / 2)
    slack = [float(np.max(t.A @ y - t.b)) for t in prop.terms]
    return sorted(range(len(prop.terms)), key=slack.__getitem__)


def check_with_worker(net: ReluNet, prop: Property, timeout: float, worker: MarabouWorker) -> CheckResult:
    """`marabou_check_property` on an existing worker (lets a bisection reuse one subprocess)."""
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
        log.debug("marabou %s: %s", name, code)
        if code == "sat":
            found = _replay(net, prop, point)
            if found is None:
                code, point = worker.solve(net, prop, k, REPLAY_MARGIN, deadline)
                log.debug("marabou %s with margin %g: %s", name, REPLAY_MARGIN, code)
                found = _replay(net, prop, point) if code == "sat" else None
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
