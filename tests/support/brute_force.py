"""Reference answers by enumeration: every activation pattern of a tiny net, one LP each (HiGHS)."""

from __future__ import annotations

import itertools

import highspy
import numpy as np

from advgap.verify.network import ReluNet

Affine = tuple[np.ndarray, np.ndarray]


def _pattern_affine(net: ReluNet, pattern: list[np.ndarray]) -> tuple[list[Affine], np.ndarray, np.ndarray]:
    """Pre-activations of each hidden layer and the logits as affine maps of x under a fixed pattern."""
    n = net.n_inputs
    m, c = np.eye(n), np.zeros(n)
    pre = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        m, c = w @ m, w @ c + b
        if k < len(net.weights) - 1:
            pre.append((m.copy(), c.copy()))
            d = pattern[k].astype(float)
            m, c = d[:, None] * m, d * c
    return pre, m, c


def brute_force_min_distance(net: ReluNet, x0: np.ndarray, label: int, targets: list[int]) -> float:
    """min ‖x − x0‖∞ over x in [0,1]^n with logit_t(x) >= logit_label(x) for some target (inf if none)."""
    n = net.n_inputs
    best = np.inf
    for bits in itertools.product([0, 1], repeat=sum(net.hidden_sizes)):
        flat = np.array(bits, dtype=bool)
        pattern = np.split(flat, np.cumsum(net.hidden_sizes)[:-1])
        pre, m, c = _pattern_affine(net, pattern)
        for t in targets:
            rows, lower, upper = [], [], []
            for (pm, pc), active in zip(pre, pattern, strict=True):
                for j in range(len(pc)):
                    row = np.append(pm[j], 0.0)
                    if active[j]:
                        rows.append(row), lower.append(-pc[j]), upper.append(np.inf)
                    else:
                        rows.append(row), lower.append(-np.inf), upper.append(-pc[j])
            rows.append(np.append(m[t] - m[label], 0.0)), lower.append(c[label] - c[t]), upper.append(np.inf)
            for i in range(n):  # |x_i - x0_i| <= d
                e = np.zeros(n + 1)
                e[i], e[n] = 1.0, -1.0
                rows.append(e.copy()), lower.append(-np.inf), upper.append(x0[i])
                e[n] = 1.0
                rows.append(e), lower.append(x0[i]), upper.append(np.inf)
            value = _solve_lp(n, np.array(rows), np.array(lower), np.array(upper))
            best = min(best, value)
    return best


def _solve_lp(n: int, rows: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    cost = np.zeros(n + 1)
    cost[n] = 1.0
    h.addCols(n + 1, cost, np.zeros(n + 1), np.ones(n + 1), 0, np.zeros(n + 1, np.int32), np.zeros(0, np.int32),
              np.zeros(0))
    for row, lo, hi in zip(rows, lower, upper, strict=True):
        idx = np.flatnonzero(row).astype(np.int32)
        h.addRow(max(lo, -inf), min(hi, inf), len(idx), idx, row[idx])
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return np.inf
    return float(h.getInfo().objective_function_value)


def random_net(seed: int, n_inputs: int, hidden: tuple[int, ...], n_outputs: int = 3) -> ReluNet:
    rng = np.random.default_rng(seed)
    sizes = (n_inputs, *hidden, n_outputs)
    layers = [
        (rng.normal(size=(sizes[k + 1], sizes[k])), rng.normal(scale=0.5, size=sizes[k + 1]))
        for k in range(len(sizes) - 1)
    ]
    return ReluNet.from_layers(layers)


def brute_force_feasible(net: ReluNet, lo: np.ndarray, hi: np.ndarray, A: np.ndarray, b: np.ndarray) -> bool:
    """Whether some x in [lo, hi] has logits y with A @ y <= b (every row), by one LP per activation pattern."""
    n = net.n_inputs
    for bits in itertools.product([0, 1], repeat=sum(net.hidden_sizes)):
        pattern = np.split(np.array(bits, dtype=bool), np.cumsum(net.hidden_sizes)[:-1])
        pre, m, c = _pattern_affine(net, pattern)
        rows, lower, upper = [], [], []
        for (pm, pc), active in zip(pre, pattern, strict=True):
            for j in range(len(pc)):
                rows.append(np.append(pm[j], 0.0))
                lower.append(-pc[j] if active[j] else -np.inf)
                upper.append(np.inf if active[j] else -pc[j])
        for a_row, b_k in zip(A, b, strict=True):
            rows.append(np.append(a_row @ m, 0.0)), lower.append(-np.inf), upper.append(b_k - a_row @ c)
        for i in range(n):
            e = np.zeros(n + 1)
            e[i] = 1.0
            rows.append(e), lower.append(lo[i]), upper.append(hi[i])
        if np.isfinite(_solve_lp(n, np.array(rows), np.array(lower), np.array(upper))):
            return True
    return False
