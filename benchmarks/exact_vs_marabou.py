"""Native exact engine vs Marabou (the study's bisection with a complete verifier), side by side in one run.

    .venv/bin/python benchmarks/exact_vs_marabou.py [--nets vanilla adversarial] [--n 20] [--timeout 60] [--verbose]

For each net (a bundled name or a network file) and its first N correctly classified MNIST test images, both
engines compute the minimal L∞ distance to an adversarial point (any target) with the same tolerance and the same
time limit per image; the table shows both certified intervals, the seconds each took, the ratio Marabou / native
and whether the intervals agree (overlap up to tol). Needs the optional extra: pip install 'advgap[marabou]'.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys

import numpy as np

from advgap.data.mnist import mnist_arrays
from advgap.errors import AdvgapError
from advgap.models.loader import load_network
from advgap.verify.api import min_linf_distance
from advgap.verify.crosscheck import cross_check
from advgap.verify.marabou import marabou_min_linf_distance, require_maraboupy
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceResult, DistanceStatus


def interval(result: DistanceResult) -> str:
    mark = "" if result.status is DistanceStatus.EXACT else f" {result.status.value}"
    return f"[{result.lower:.4f},{result.upper:.4f}]{mark}"


def compare(name: str, net: ReluNet, images: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> list[str]:
    """Print one row per image; return the disagreement messages."""
    correct = np.flatnonzero(net.predict(images) == labels)[: args.n]
    print(f"\n== {name}: {len(correct)} correctly classified test images, tol {args.tol:g}, {args.timeout:g} s each")
    print(f"{'index':>5} {'label':>5} {'native':>24} {'s':>7} {'marabou':>24} {'s':>7} {'ratio':>6}  agreement")
    ratios, disagreements = [], []
    for index in correct:
        x, label = images[index], int(labels[index])
        native = min_linf_distance(net, x, label, timeout=args.timeout, tol=args.tol)
        exact = marabou_min_linf_distance(net, x, label, timeout=args.timeout, tol=args.tol)
        problem = cross_check(native, exact, args.tol)
        ratio = exact.seconds / max(native.seconds, 1e-9)
        if native.status is DistanceStatus.EXACT and exact.status is DistanceStatus.EXACT:
            ratios.append(ratio)
        if problem:
            disagreements.append(f"{name} image {index}: {problem}")
        print(
            f"{index:>5} {label:>5} {interval(native):>24} {native.seconds:>7.2f} {interval(exact):>24} "
            f"{exact.seconds:>7.2f} {ratio:>6.1f}  {'DISAGREE' if problem else 'ok'}",
            flush=True,
        )
    median = f"{statistics.median(ratios):.1f}" if ratios else "n/a"
    print(f"median speed ratio marabou/native (both exact, {len(ratios)} images): {median}")
    print(f"disagreements: {len(disagreements)}")
    return disagreements


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["vanilla", "adversarial"], help="bundled names or files")
    parser.add_argument("--n", type=int, default=20, help="correctly classified test images per net (default 20)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per image and engine (default 60)")
    parser.add_argument("--tol", type=float, default=1e-3, help="binary-search tolerance in δ (default 1e-3)")
    parser.add_argument("--verbose", action="store_true", help="log every Marabou query and bisection step")
    args = parser.parse_args()
    if args.verbose:
        logging.basicConfig(format="  %(message)s")
        for name in ("advgap.verify.marabou", "advgap.verify.bisection"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        require_maraboupy()
        nets = {name: load_network(name).net for name in args.nets}
        images, labels = mnist_arrays("test")
        images = images.astype(np.float64)
        disagreements = [d for name, net in nets.items() for d in compare(name, net, images, labels, args)]
    except AdvgapError as exc:
        print(f"advgap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in disagreements:
        print(line)
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
