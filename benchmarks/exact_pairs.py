"""Exact per-target distances on the bundled study nets: this engine against an older one, in the same run.

    .venv/bin/python benchmarks/exact_pairs.py [--nets vanilla adversarial] [--n 10] [--timeout 60]
        [--baseline e0396c7] [--worktree DIR]

What `advgap run` asks the exact engine: for each of the first N correctly classified test images and each of its 9
target classes, the minimal L∞ distance (tolerance 1e-3). Each engine runs in its own subprocess (PYTHONPATH set to
its `src`), one after the other, on one core with BLAS on one thread; both report process CPU seconds, which a
shared machine disturbs less than wall time. The table gives per net and engine the pairs solved exactly, CPU
seconds in all, and the ratio; every pair's two certified intervals are checked to overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _worktree import baseline_worktree

ROOT = Path(__file__).resolve().parent.parent


def _pairs(net_name: str, n: int, timeout: float) -> None:
    """In the subprocess: one JSON line per (image, target) pair."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from advgap.data.mnist import mnist_arrays
    from advgap.verify.api import min_linf_distance
    from advgap.verify.network import ReluNet

    # the weights read with numpy, so that older engines (whose loaders differ) run the same nets
    with np.load(ROOT / "src" / "advgap" / "models" / "weights" / f"{net_name}.npz") as data:
        depth = sum(1 for key in data.files if key.startswith("W"))
        net = ReluNet.from_layers([(data[f"W{k}"], data[f"b{k}"]) for k in range(depth)])
    images, labels = mnist_arrays("test")
    chosen = np.flatnonzero(net.predict(images[:500]) == labels[:500])[:n]
    with threadpool_limits(1, "blas"):
        for i in chosen:
            label = int(labels[i])
            for target in range(net.n_outputs):
                if target == label:
                    continue
                start = time.process_time()
                r = min_linf_distance(net, images[i], label, target=target, timeout=timeout, tol=1e-3)
                print(json.dumps({"image": int(i), "target": target, "lower": r.lower,
                                  "upper": None if r.upper == float("inf") else r.upper, "status": r.status.value,
                                  "cpu": time.process_time() - start}), flush=True)


def _run(src: Path, net: str, n: int, timeout: float) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(src), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", net, str(n), str(timeout)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _overlap(a: dict, b: dict) -> bool:
    inf = float("inf")
    return a["lower"] <= (b["upper"] or inf) + 1e-3 and b["lower"] <= (a["upper"] or inf) + 1e-3


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _pairs(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["vanilla", "adversarial"])
    parser.add_argument("--n", type=int, default=10, help="correctly classified test images per net (default 10)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per pair (default 60)")
    parser.add_argument("--baseline", default="e0396c7", help="git revision of the older engine")
    parser.add_argument("--worktree", help="its worktree (default runs/baseline-REV, added when missing)")
    args = parser.parse_args()
    old_src = baseline_worktree(args.baseline, Path(args.worktree or ROOT / f"runs/baseline-{args.baseline}")) / "src"
    print(f"exact per-target distances, first {args.n} correctly classified test images, all targets, "
          f"tol 1e-3, {args.timeout:g} s per pair, one core each, engines one after the other")
    print("| net | pairs | exact new | exact baseline | CPU s new | CPU s baseline | baseline / new | disagreements |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for net in args.nets:
        new = _run(ROOT / "src", net, args.n, args.timeout)
        old = _run(old_src, net, args.n, args.timeout)
        cpu_new, cpu_old = sum(r["cpu"] for r in new), sum(r["cpu"] for r in old)
        bad = sum(not _overlap(a, b) for a, b in zip(new, old, strict=True))
        exact_new = sum(r["status"] == "exact" for r in new)
        exact_old = sum(r["status"] == "exact" for r in old)
        print(f"| {net} | {len(new)} | {exact_new} | {exact_old} | {cpu_new:.1f} | {cpu_old:.1f} | "
              f"{cpu_old / cpu_new:.2f} | {bad} |", flush=True)


if __name__ == "__main__":
    main()
