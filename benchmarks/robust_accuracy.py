"""Verified robust accuracy of the bundled nets: what `advgap evaluate --robust 0.1,0.2 --exact` computes, timed.

    .venv/bin/python benchmarks/robust_accuracy.py [--models vanilla,adversarial] [--images 0:10000]
        [--radii 0.1,0.2] [--workers N] [--baseline REV [--worktree DIR]]

Per net: the robust accuracy per radius according to FGSM, PGD, FMN and AutoAttack (ART), the exact engine's
proven ≤ true ≤ not refuted range, the wall time, the CPU time of each method (summed over the workers) and of the
whole run (with the workers' start-up), and two projections to all 10,000 test images: the measured wall time per
image (on this machine, loaded as it is) and the CPU time per image spread over two idle cores. The load average is
printed before and after each net. With --baseline, the same measurement runs first for that commit (this script in
a fresh process on its worktree's `src`), then for the working tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

from _worktree import REPO, baseline_worktree
from advgap.cli.options import parse_images
from advgap.data.mnist import load_mnist
from advgap.experiment.config import N_TEST, default_workers
from advgap.experiment.robust import ATTACKS, LABELS, Settings, robust_accuracy
from advgap.models.loader import load_network


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers)."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vanilla,adversarial", help="bundled names or network files")
    parser.add_argument("--images", default=f"0:{N_TEST}", help="test images N or A:B (default: all)")
    parser.add_argument("--radii", default="0.1,0.2", help="L∞ radii (default 0.1,0.2)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: all cores)")
    parser.add_argument("--baseline", default="none", help="commit to measure first, or 'none' (the default)")
    parser.add_argument("--worktree", type=Path, help="its worktree (default runs/baseline-REV, added when missing)")
    args = parser.parse_args()
    if args.baseline != "none":
        worktree = baseline_worktree(args.baseline, args.worktree or REPO / "runs" / f"baseline-{args.baseline}")
        rest = ["--models", args.models, "--images", args.images, "--radii", args.radii, "--workers", str(args.workers)]
        for tree, src in ((args.baseline, worktree.resolve() / "src"), ("working tree", REPO / "src")):
            print(f"## {tree}", flush=True)
            subprocess.run([sys.executable, __file__, *rest], check=True, env={**os.environ, "PYTHONPATH": str(src)})
        return
    start, stop = parse_images(args.images)
    settings = Settings(tuple(sorted(float(r) for r in args.radii.split(","))), exact=True)
    images, labels = load_mnist("test")
    pixels = images[start:stop].reshape(stop - start, -1).astype(np.float64) / 255.0
    n = stop - start
    print(f"images {start}:{stop}, {args.workers} workers, exact engine {settings.timeout:g} s per image")
    print("| net | δ | " + " | ".join(LABELS[a] for a in ATTACKS) + " | exact: proven ≤ true ≤ not refuted |")
    print("|---|--:|" + "--:|" * len(ATTACKS) + "--:|")
    summaries = []
    for name in args.models.split(","):
        load_before, cpu_before = os.getloadavg(), cpu_seconds()
        result = robust_accuracy(load_network(name).net, pixels, labels[start:stop].astype(np.int64), settings,
                                 workers=args.workers)
        load_after, cpu = os.getloadavg(), cpu_seconds() - cpu_before
        for row in result.as_dict()["radii"]:
            acc = row["accuracy"]
            cells = " | ".join(f"{100 * acc[a]:.2f}%" for a in ATTACKS)
            unsettled = row["images"]["unsettled"]
            print(f"| {name} | {row['delta']:g} | {cells} | {100 * acc['proven']:.2f}% ≤ true ≤ "
                  f"{100 * acc['not_refuted']:.2f}% ({unsettled} unsettled) |")
        methods = ", ".join(f"{LABELS.get(k, k)} {v:.0f}" for k, v in result.cpu_seconds.items())
        paced, idle = result.seconds / n * N_TEST / 60, cpu / n * N_TEST / 2 / 60
        summaries.append(
            f"{name}: {int(result.correct.sum())} of {n} correct; wall {result.seconds:.0f} s; CPU s {methods}, "
            f"all (with start-up and replays) {cpu:.0f}; {result.checks} engine checks; load average "
            f"{load_before[0]:.1f} before, {load_after[0]:.1f} after; 10,000 images: {paced:.1f} min at this "
            f"machine's pace, {idle:.1f} min of CPU over two idle cores"
        )
    print("\n".join(summaries))


if __name__ == "__main__":
    main()
