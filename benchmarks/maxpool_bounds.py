"""How tight the engine's CROWN bounds are on the max-pool encoding, against a direct max relaxation and the truth.

    .venv/bin/python benchmarks/maxpool_bounds.py [--nets 30] [--seed 0]

Random small nets (conv C×2×2 on 1×S×S, ReLU, max pool k×k stride k; the pooled values are the outputs) on random
L∞ boxes in [0, 1]. For every pooled value m = max_i relu(c_i(x)) (c_i: the conv pre-activations, affine in x):
the exact range — max: max_i relu(max_box c_i); min: one LP, min t with t ≥ 0, t ≥ c_i(x) on the box — the direct
max relaxation's interval [max_i l_i, max_i u_i] (DeepPoly's and auto_LiRPA's MaxPool bounds over the same exact
bounds l_i, u_i of its inputs relu(c_i)), and the engine's CROWN bounds (`crown_bounds`, then `backward_lower` on
the outputs). Printed per pool size: mean widths, and how often CROWN's upper (lower) end is looser than the
direct relaxation's.
"""

from __future__ import annotations

import argparse

import highspy
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from advgap.formats.onnx_import import onnx_to_relunet
from advgap.verify.bounds import backward_lower, crown_bounds
from advgap.verify.milp import new_highs
from advgap.verify.network import ReluNet, dense

CHANNELS = 2


def pool_net(rng: np.random.Generator, side: int, k: int) -> ReluNet:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[k, k], strides=[k, k])]
    inits = [numpy_helper.from_array(rng.normal(size=(CHANNELS, 1, 2, 2)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(scale=0.3, size=CHANNELS).astype(np.float32), "b")]
    graph = helper.make_graph(nodes, "pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])], inits)
    return onnx_to_relunet(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def windows(side: int, k: int) -> np.ndarray:
    """Flat conv-output indices of each pooled value, in the pool's output order (channel, row, column)."""
    conv, out = side - 1, (side - 1) // k
    c, i, j, r, s = np.meshgrid(*(np.arange(n) for n in (CHANNELS, out, out, k, k)), indexing="ij")
    return ((c * conv + i * k + r) * conv + j * k + s).reshape(CHANNELS * out * out, k * k)


def exact_min(w: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """min over the box of max(0, max_i w_i x + b_i): an LP in (x, t)."""
    h = new_highs()
    n = len(lo)
    cost = np.zeros(n + 1)
    cost[n] = 1.0
    h.addCols(n + 1, cost, np.append(lo, 0.0), np.append(hi, highspy.kHighsInf), 0, np.zeros(n + 2, np.int32),
              np.zeros(0, np.int32), np.zeros(0))
    for wi, bi in zip(w, b, strict=True):  # t - w_i x >= b_i
        idx = np.arange(n + 1, dtype=np.int32)
        h.addRow(float(bi), highspy.kHighsInf, n + 1, idx, np.append(-wi, 1.0))
    h.run()
    return float(h.getInfo().objective_function_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=30, help="random nets (and boxes) per pool size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print("| pool | pooled values | exact width | direct width | CROWN width | CROWN upper looser | "
          "mean excess | CROWN lower looser | mean excess |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for side, k in ((5, 2), (7, 3), (9, 4)):
        rows = []
        for _ in range(args.nets):
            net = pool_net(rng, side, k)
            x, eps = rng.uniform(size=net.n_inputs), rng.uniform(0.02, 0.3)
            lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
            bounds = crown_bounds(net, lo, hi)
            last, eye = len(net.weights) - 1, np.eye(net.n_outputs)
            crown_lo = backward_lower(net, bounds, eye, last, lo, hi)
            crown_hi = -backward_lower(net, bounds, -eye, last, lo, hi)
            idx = windows(side, k)
            l_in, u_in = np.maximum(bounds.lower[0], 0)[idx], np.maximum(bounds.upper[0], 0)[idx]  # exact: layer 0
            w0, b0 = dense(net.weights[0]), net.biases[0]
            true_lo = np.array([exact_min(w0[row], b0[row], lo, hi) for row in idx])
            rows.append(np.stack([true_lo, u_in.max(1), l_in.max(1), u_in.max(1), crown_lo, crown_hi], axis=1))
        t_lo, t_hi, d_lo, d_hi, c_lo, c_hi = np.concatenate(rows).T
        assert np.all(c_lo <= t_lo + 1e-7) and np.all(c_hi >= t_hi - 1e-7)  # CROWN is sound
        up, down = c_hi > d_hi + 1e-9, c_lo < d_lo - 1e-9
        print(f"| {k}×{k} | {len(t_lo)} | {np.mean(t_hi - t_lo):.3f} | {np.mean(d_hi - d_lo):.3f} | "
              f"{np.mean(c_hi - c_lo):.3f} | {up.sum()} | {np.mean((c_hi - d_hi)[up]) if up.any() else 0:.3f} | "
              f"{down.sum()} | {np.mean((d_lo - c_lo)[down]) if down.any() else 0:.3f} |")


if __name__ == "__main__":
    main()
