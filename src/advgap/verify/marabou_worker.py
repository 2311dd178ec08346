"""The Marabou worker process: `python -m advgap.verify.marabou_worker FD`, FD a socket to the caller.

It answers queries until the socket closes: each query (pickled through `multiprocessing.connection`) is a tuple
(weights, biases, lo, hi, A, b, timeout_s) asking whether some x in [lo, hi] has A @ net(x) <= b; the answer is
(Marabou's exit code, the SAT input or None). A process of its own, so that the caller can kill a query that
overruns; it imports numpy and maraboupy only.

The query is built directly from the weights: one variable per input, per pre- and post-activation and per output,
an equation per affine row, a ReLU constraint per hidden neuron, the box as input bounds, A @ y <= b as rows.
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

import numpy as np


def solve_query(
    weights: tuple[np.ndarray, ...],
    biases: tuple[np.ndarray, ...],
    lo: np.ndarray,
    hi: np.ndarray,
    rows: np.ndarray,
    rhs: np.ndarray,
    timeout_s: int,
) -> tuple[str, np.ndarray | None]:
    """Build and solve one Marabou query; return Marabou's exit code and, when 'sat', the input point."""
    from maraboupy import MarabouCore

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
            row = w[[j]].toarray()[0] if hasattr(w, "toarray") else w[j]  # a sparse weight's row, made dense
            for i in np.flatnonzero(row):
                eq.addAddend(float(row[i]), prev[i])
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


def serve(conn: Connection) -> None:
    """Answer queries until the caller closes the socket."""
    while True:
        try:
            query = conn.recv()
        except EOFError:
            return
        conn.send(solve_query(*query))


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
