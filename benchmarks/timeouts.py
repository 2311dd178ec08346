"""Time limits and start-up: `advgap verify` and `advgap mindist` at S = 2, 5, 10 s on hard instances, `advgap verify`
on an easy one, for the working tree and a baseline commit in the same invocation.

    .venv/bin/python benchmarks/timeouts.py [--baseline 457c9ed | --baseline none] [--worktree DIR] [--repeat 3]

Instances: verify answers the shared mnistfc net N (784-256-256-10) on prop_1_0.03 (H: 38 s for α,β-CROWN in
2021, a timeout here), N given as shipped (.onnx) and as an advgap .npz; mindist finds the minimal distance on N of
H's centre, MNIST test image 2315 (not certified in 10 s); the easy instance is prop_2_0.05 (holds by bounds alone).
Every command is a fresh process, one at a time; wall is measured around it, process start included. verify's limit
counts from the process start, so its wall is compared with S; mindist's limit is per image, so its image's own
seconds (the JSON row) are. With --repeat, the worst of the repeats is shown (and for the easy instance the best
too). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _worktree import baseline_worktree

REPO = Path(__file__).resolve().parents[1]
MNISTFC = REPO.parent / "shared" / "vnncomp_mnistfc"
NET, HARD, EASY = MNISTFC / "mnist-net_256x2.onnx", MNISTFC / "prop_1_0.03.vnnlib", MNISTFC / "prop_2_0.05.vnnlib"
IMAGE = 2315  # the MNIST test image at the centre of HARD's box
LIMITS = (2.0, 5.0, 10.0)


def advgap(src: Path, *args: object) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m advgap ARGS` with `src` first on the path, and its wall time."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "advgap", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300)
    return proc, time.monotonic() - start


def npz_copy(folder: Path) -> Path:
    """N as an advgap .npz file (written by the working tree's advgap)."""
    path = folder / "mnist-net_256x2.npz"
    code = ("import sys; from advgap.formats.netfile import save_net; from advgap.models.loader import load_network; "
            "save_net(sys.argv[2], load_network(sys.argv[1]).net, {})")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code, str(NET), str(path)], env=env, check=True)
    return path


def worst(runs: list[tuple[str, float]]) -> tuple[str, float]:
    return max(runs, key=lambda run: run[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="457c9ed", help="commit to compare with, or 'none' (default 457c9ed)")
    parser.add_argument("--worktree", type=Path, help="its worktree (default runs/baseline-REV, added when missing)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the worst is shown (default 1)")
    args = parser.parse_args()
    trees = [("working tree", REPO / "src")]
    if args.baseline != "none":
        worktree = baseline_worktree(args.baseline, args.worktree or REPO / "runs" / f"baseline-{args.baseline}")
        trees.append((args.baseline, worktree.resolve() / "src"))
    with tempfile.TemporaryDirectory() as tmp:
        npz = npz_copy(Path(tmp))
        print("| tree | command | net | S | answer | wall s | wall / S |\n|---|---|---|--:|---|--:|--:|")
        for name, src in trees:
            for net in (NET, npz):
                for limit in LIMITS:
                    runs = []
                    for _ in range(args.repeat):
                        proc, wall = advgap(src, "verify", net, HARD, "--timeout", limit)
                        runs.append((proc.stdout.strip() or proc.stderr.strip()[-60:], wall))
                    answer, wall = worst(runs)
                    print(f"| {name} | verify H | {net.suffix} | {limit:g} | {answer} | {wall:.2f} | "
                          f"{wall / limit:.3f} |")
        print("\n| tree | command | S | status | image s | image s / S | wall s |\n|---|---|--:|---|--:|--:|--:|")
        for name, src in trees:
            for limit in LIMITS:
                runs = []
                for _ in range(args.repeat):
                    proc, wall = advgap(src, "mindist", "--model", NET, "--images", f"{IMAGE}:{IMAGE + 1}",
                                        "--timeout", limit, "--json", "--no-progress")
                    row = json.loads(proc.stdout)
                    runs.append((row["status"], row["seconds"], wall))
                status, seconds, wall = max(runs, key=lambda run: run[1])
                print(f"| {name} | mindist image {IMAGE} | {limit:g} | {status} | {seconds:.3f} | "
                      f"{seconds / limit:.3f} | {wall:.2f} |")
        print("\n| tree | command | net | answer | best wall s | worst wall s |\n|---|---|---|---|--:|--:|")
        for name, src in trees:
            for net in (NET, npz):
                runs = []
                for _ in range(args.repeat):
                    proc, wall = advgap(src, "verify", net, EASY)
                    runs.append((proc.stdout.strip(), wall))
                answer, wall = worst(runs)
                best = min(wall for _, wall in runs)
                print(f"| {name} | verify easy | {net.suffix} | {answer} | {best:.2f} | {wall:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
