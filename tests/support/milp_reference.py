"""An independent reference for the minimal L∞ distance: one big-M MILP per target, written from scratch here.

Big-M constants come from interval arithmetic on [0, 1]^n (loose but valid); every hidden neuron gets a binary.
Used to check the engine's certified interval on nets too large for pattern enumeration.
"""

from __future__ import annotations

import highspy
import numpy as np

from advgap.verify.network import ReluNet

INF = highspy.kHighsInf


def _interval(net: ReluNet) -> list[tuple[np.ndarray, np.ndarray]]:
    lo, hi = np.zeros(net.n_inputs), np.ones(net.n_inputs)
    out = []
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        zl = np.maximum(w, 0) @ lo + np.minimum(w, 0) @ hi + b
        zu = np.maximum(w, 0) @ hi + np.minimum(w, 0) @ lo + b
        out.append((zl, zu))
        lo, hi = np.maximum(zl, 0), np.maximum(zu, 0)
    return out


def milp_min_distance(net: ReluNet, x0: np.ndarray, label: int, target: int, time_limit: float = 60.0) -> float:
    """min ‖x − x0‖∞ over x in [0,1]^n with logit_target(x) >= logit_label(x), solved to optimality (inf if none)."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", time_limit)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 1e-9)
    n = net.n_inputs
    count = 0

    def col(lo: float, hi: float, cost: float = 0.0, integer: bool = False) -> int:
        nonlocal count
        h.addCol(cost, lo, hi, 0, np.zeros(0, np.int32), np.zeros(0))
        if integer:
            h.changeColIntegrality(count, highspy.HighsVarType.kInteger)
        count += 1
        return count - 1

    def row(lo: float, hi: float, cols: list[int], vals: list[float]) -> None:
        h.addRow(lo, hi, len(cols), np.array(cols, np.int32), np.array(vals, float))

    xs = [col(0.0, 1.0) for _ in range(n)]
    t = col(0.0, 1.0, cost=1.0)
    for i in range(n):
        row(-INF, x0[i], [xs[i], t], [1.0, -1.0])
        row(x0[i], INF, [xs[i], t], [1.0, 1.0])
    prev = xs
    for (w, b), (zl, zu) in zip(zip(net.weights[:-1], net.biases[:-1], strict=True), _interval(net), strict=True):
        post = []
        for j in range(w.shape[0]):
            a = col(0.0, max(zu[j], 0.0))
            s = col(0.0, 1.0, integer=True)
            row(b[j], INF, [a, *prev], [1.0, *(-w[j])])  # a >= z
            row(-INF, 0.0, [a, s], [1.0, -max(zu[j], 0.0)])  # a <= u s
            row(-INF, b[j] - min(zl[j], 0.0), [a, s, *prev], [1.0, -min(zl[j], 0.0), *(-w[j])])  # a <= z - l(1-s)
            post.append(a)
        prev = post
    gain = net.weights[-1][target] - net.weights[-1][label]
    row(net.biases[-1][label] - net.biases[-1][target], INF, prev, list(gain))
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return np.inf
    assert status == highspy.HighsModelStatus.kOptimal, h.modelStatusToString(status)
    return float(h.getInfo().objective_function_value)
