"""ACAS Xu (VNN-COMP 2021 ONNX nets, VNN-LIB properties): the e0396c7 engine, the new one and Marabou side by side.

    .venv/bin/python benchmarks/acasxu.py [--dir runs/acasxu] [--timeout 60] [--marabou] [--instances N:P ...]

Needs the benchmark files in --dir (default runs/acasxu, git-ignored): the *.onnx nets and prop_*.vnnlib files of
`benchmarks/acasxu/` in github.com/stanleybak/vnncomp2021. The baseline engine runs from a git worktree of commit
e0396c7 (--baseline, default runs/baseline-e0396c7 as in the other benchmarks; created with `git worktree add`
when missing). Every engine answers each instance in its own subprocess, one at a time; seconds count from reading
the property to the answer replayed through onnxruntime, as in `advgap vnncomp`. Property 6's input set is a union
of two boxes: the VNN-LIB reader makes it two cases (e0396c7's reader refuses it).
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

REPO = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "e0396c7"
SAMPLE = [  # net i_j : property
    "1_1:1", "3_3:1", "2_1:2", "3_3:2", "4_2:2", "1_9:3", "4_2:3",
    "1_1:5", "1_1:6", "1_9:7", "2_9:8", "3_3:9", "4_5:10",
]


def expected(net: str, prop: int) -> str:
    """The answer in the literature (Reluplex/Marabou papers, VNN-COMP 2021 results), '-' where not recalled."""
    if prop in (1, 5, 6, 9, 10):
        return "holds"
    if prop == 2 and net.startswith(("2_", "3_", "4_", "5_")):
        return "holds" if net in ("3_3", "4_2") else "violated"
    if prop in (3, 4):
        return "violated" if net in ("1_7", "1_8", "1_9") else "holds"
    return "violated" if prop in (7, 8) else "-"


def worker(engine: str, onnx: str, vnnlib: str, timeout: float) -> None:
    """Answer one instance with `engine` and print {"answer", "seconds", "detail"} as JSON (run in a subprocess).

    `advgap.experiment.vnncomp.solve` maps the verdict to an answer and replays counterexamples through onnxruntime.
    """
    from advgap.experiment import vnncomp
    from advgap.formats.vnnlib import read_vnnlib
    from advgap.models.loader import load_network

    if engine == "marabou":
        from advgap.verify.marabou import marabou_check_property

        vnncomp.check_property = lambda net, prop, timeout, workers: marabou_check_property(net, prop, timeout)
    network = load_network(onnx)
    start = time.monotonic()
    outcome = vnncomp.solve(network, read_vnnlib(vnnlib), start + timeout)
    print(json.dumps({"answer": outcome.answer.value, "seconds": time.monotonic() - start, "detail": outcome.detail}))


def run(engine: str, src: Path, onnx: Path, vnnlib: Path, timeout: float) -> dict:
    """One instance in a fresh interpreter with `src` first on the path; killed 30 s past its timeout."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", engine, str(onnx), str(vnnlib), str(timeout)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return {"answer": "timeout", "seconds": timeout, "detail": "killed"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"answer": "error", "seconds": float("nan"), "detail": done.stderr.strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / "runs" / "acasxu", help="the .onnx and .vnnlib files")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per instance and engine (default 60)")
    parser.add_argument("--baseline", type=Path, default=REPO / "runs" / f"baseline-{BASELINE_COMMIT}",
                        help="worktree of e0396c7")
    parser.add_argument("--marabou", action="store_true", help="also run Marabou (needs advgap[marabou])")
    parser.add_argument("--instances", nargs="+", default=SAMPLE, help="NET:PROP pairs such as 3_3:2")
    parser.add_argument("--worker", nargs=4, metavar=("ENGINE", "ONNX", "VNNLIB", "TIMEOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, onnx, vnnlib, timeout = args.worker
        worker(engine, onnx, vnnlib, float(timeout))
        return 0
    baseline = baseline_worktree(BASELINE_COMMIT, args.baseline) / "src"
    engines = {"e0396c7": ("native", baseline), "new": ("native", REPO / "src")}
    if args.marabou:
        engines["marabou"] = ("marabou", REPO / "src")
    header = f"{'instance':<10} {'expected':<9}" + "".join(f" {name:>17}" for name in engines)
    print(f"ACAS Xu, {args.timeout:g} s per instance and engine\n{header}", flush=True)
    solved = dict.fromkeys(engines, 0)
    for item in args.instances:
        net, prop = item.split(":")
        onnx, vnnlib = args.dir / f"ACASXU_run2a_{net}_batch_2000.onnx", args.dir / f"prop_{prop}.vnnlib"
        row = f"{item:<10} {expected(net, int(prop)):<9}"
        for name, (engine, src) in engines.items():
            result = run(engine, src, onnx, vnnlib, args.timeout)
            solved[name] += result["answer"] in ("holds", "violated")
            row += f" {result['answer']:>9} {result['seconds']:6.1f}s"
        print(row, flush=True)
    print("solved: " + ", ".join(f"{name} {count}/{len(args.instances)}" for name, count in solved.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
