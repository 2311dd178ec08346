"""Full-size MNIST conv nets from torch: ONNX import cost (working tree against a baseline) and VNN-LIB answers.

    .venv/bin/python benchmarks/conv_import.py [--baseline 457c9ed | --baseline none] [--worktree DIR]
        [--n 5] [--eps 0.02 0.04] [--timeout 60] [--epochs 1] [--cache runs/conv-import]

The nets have the shapes of the MNIST conv nets of VNN-COMP 2021's verivital benchmark: conv 32×2×2 on 1×28×28,
ReLU, average or max pooling 4×4 stride 4, dense 1,152 → 10 ("avgpool", "maxpool"; 23,328 conv ReLUs). Each is
trained here (plain torch, one thread, Adam 1e-3, batch 128, --epochs) and exported with `torch.onnx.export`.

Import: `load_onnx` (with its onnxruntime check) in a fresh subprocess per net and engine source — "new" with
PYTHONPATH=src, "baseline" with PYTHONPATH=<worktree>/src (`git worktree add`, as in deeper_nets.py) — which
reports the wall seconds of the call (torch's import, when a convolution needs it, included), its resident memory
before the call (python, numpy, onnx and onnxruntime loaded) and its peak resident memory (VmHWM: the whole
process).

Verify: for each net the working tree imports, the robustness properties of its first N correctly classified test
images at each ε (VNN-LIB: the box [x − ε, x + ε] ∩ [0, 1]; violated when some other logit reaches the label's)
through `advgap verify NET PROP --timeout T` of every engine that imports the net, one process each, one at a time
(so each answer includes loading the net).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _worktree import baseline_worktree
from advgap.data.mnist import mnist_arrays
from advgap.formats.onnx_import import load_onnx
from deeper_nets import REPO, train

IMPORT_CHILD = """
import json, sys, time
from advgap.errors import ModelFormatError
from advgap.formats.onnx_import import load_onnx
def status_gib(key):  # VmRSS: resident now; VmHWM: peak resident of this process image (ru_maxrss keeps the parent's)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 2**20
before = status_gib("VmRSS")
start = time.monotonic()
try:
    net, error = load_onnx(sys.argv[1]).net, None
except ModelFormatError as exc:
    net, error = None, str(exc)
print(json.dumps({"seconds": time.monotonic() - start, "rss_before_gib": before, "peak_gib": status_gib("VmHWM"),
                  "hidden": None if net is None else list(net.hidden_sizes), "error": error}))
"""


def verivital_shape(pool: str) -> nn.Sequential:
    """Conv 32×2×2 → ReLU → AvgPool or MaxPool 4×4/4 → Flatten → Linear 1,152 → 10."""
    pooling = nn.MaxPool2d(4, 4) if pool == "maxpool" else nn.AvgPool2d(4, 4)
    return nn.Sequential(nn.Conv2d(1, 32, 2), nn.ReLU(), pooling, nn.Flatten(), nn.Linear(1152, 10))


def exported(pool: str, epochs: int, cache: Path) -> Path:
    """The cached torch export of the trained `pool` net, trained and exported first when missing."""
    path = cache / f"{pool}-ep{epochs}.onnx"
    if not path.is_file():
        torch.manual_seed(0)
        model = verivital_shape(pool)
        start = time.monotonic()
        train(model, epochs, 0.0)
        print(f"trained {pool} in {time.monotonic() - start:.0f} s", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation; the new one needs onnxscript
            torch.onnx.export(model, torch.zeros(1, 1, 28, 28), str(path), dynamo=False, input_names=["x"])
    return path


def measure_import(src: Path, onnx_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", IMPORT_CHILD, str(onnx_path)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def robustness_vnnlib(x: np.ndarray, label: int, eps: float, n_outputs: int = 10) -> str:
    lo, hi = np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0)
    lines = [f"(declare-const X_{i} Real)" for i in range(len(x))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        lines += [f"(assert (>= X_{i} {float(a)!r}))", f"(assert (<= X_{i} {float(b)!r}))"]
    terms = [f"    (and (>= Y_{j} Y_{label}))" for j in range(n_outputs) if j != label]
    return "\n".join([*lines, "(assert (or", *terms, "))", ""])


def verify_net(onnx_path: Path, pool: str, args: argparse.Namespace, engine: str, src: Path) -> list[dict]:
    """`advgap verify` of the engine at `src` on the first N correctly classified test images at each ε."""
    images, labels = mnist_arrays("test")
    chosen = np.flatnonzero(load_onnx(onnx_path).net.predict(images) == labels)[: args.n]
    rows = []
    for eps in args.eps:
        for index in chosen:
            prop = Path(args.cache) / f"{pool}-{index}-{eps:g}.vnnlib"
            prop.write_text(robustness_vnnlib(images[index].astype(np.float64), int(labels[index]), eps))
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "advgap", "verify", str(onnx_path), str(prop), "--timeout",
                                   str(args.timeout)], env={**os.environ, "PYTHONPATH": str(src)},
                                  capture_output=True, text=True, check=False)
            answer = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else f"exit {done.returncode}"
            rows.append({"engine": engine, "eps": eps, "index": int(index), "answer": answer,
                         "wall": time.monotonic() - start,
                         "detail": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""})
            print(f"  {engine}: {pool} ε={eps:g} image {index}: {answer} ({rows[-1]['wall']:.1f} s) "
                  f"{rows[-1]['detail']}", flush=True)
    return rows


def import_table(results: dict[str, dict[str, dict]]) -> None:
    print("| net | engine | import s | RSS before GiB | peak RSS GiB | hidden ReLUs | outcome |")
    print("|---|---|--:|--:|--:|--:|---|")
    for pool, by_engine in results.items():
        for engine, r in by_engine.items():
            if "seconds" not in r:
                print(f"| {pool} | {engine} | – | – | – | – | {r['error']} |")
                continue
            hidden = "–" if r["hidden"] is None else f"{sum(r['hidden'])} ({'-'.join(map(str, r['hidden']))})"
            outcome = "imported" if r["error"] is None else f"refused: {r['error'].split(': ', 1)[-1]}"
            print(f"| {pool} | {engine} | {r['seconds']:.2f} | {r['rss_before_gib']:.2f} | {r['peak_gib']:.2f} | "
                  f"{hidden} | {outcome} |")


def verify_table(rows: dict[str, list[dict]], timeout: float) -> None:
    print(f"| net | engine | ε | properties | holds | violated | timeout/unknown | median s | max s |  "
          f"(limit {timeout:g} s)")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
    for pool, net_rows in rows.items():
        for engine in dict.fromkeys(r["engine"] for r in net_rows):
            for eps in sorted({r["eps"] for r in net_rows}):
                these = [r for r in net_rows if r["eps"] == eps and r["engine"] == engine]
                count = {a: sum(r["answer"] == a for r in these) for a in ("holds", "violated")}
                walls = sorted(r["wall"] for r in these)
                print(f"| {pool} | {engine} | {eps:g} | {len(these)} | {count['holds']} | {count['violated']} | "
                      f"{len(these) - sum(count.values())} | {statistics.median(walls):.1f} | {walls[-1]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="457c9ed", help="git revision of the baseline import, or 'none'")
    parser.add_argument("--worktree", help="its git worktree (default runs/baseline-REV, added when missing)")
    parser.add_argument("--n", type=int, default=5, help="correctly classified test images per net (default 5)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.04], help="L∞ radii (default 0.02 0.04)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per property (default 60)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cache", default="runs/conv-import", help="directory of the nets and properties")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engines = {"new": REPO / "src"}
    if args.baseline != "none":
        worktree = baseline_worktree(args.baseline, Path(args.worktree or f"runs/baseline-{args.baseline}"))
        engines[f"baseline {args.baseline}"] = worktree.resolve() / "src"
    nets = {pool: exported(pool, args.epochs, Path(args.cache)) for pool in ("avgpool", "maxpool")}
    imports = {pool: {key: measure_import(src, path) for key, src in engines.items()} for pool, path in nets.items()}
    verified = {pool: [row for engine, src in engines.items() if imports[pool][engine].get("error", "") is None
                       for row in verify_net(path, pool, args, engine, src)]
                for pool, path in nets.items() if imports[pool]["new"].get("error", "") is None}
    print()
    import_table(imports)
    print()
    verify_table(verified, args.timeout)


if __name__ == "__main__":
    main()
