"""Driver for `benchmarks/deeper_nets.py`: the certified minimal L∞ distance of given images, one JSON line each.

    PYTHONPATH=<advgap src> .venv/bin/python benchmarks/_distance_driver.py NET.npz IMAGES.npz OUT.jsonl
        [--timeout 60] [--tol 1e-3] [--workers N]

It uses whichever advgap is first on PYTHONPATH (the working tree's, or a baseline worktree's), so only API that
today's engine already has: `ReluNet.from_layers`, `min_linf_distance`, `crown_bounds`. NET.npz holds W0, b0, W1,
b1, …; IMAGES.npz holds `index`, `x` (n, 784) and `label`. The first line of OUT names the advgap package imported;
then one line per image: index, lower, upper, status, target, seconds (the engine's), wall (measured here), the
engine's own `unstable` count when its DistanceResult has one, and CROWN's unstable ReLUs at the final upper radius.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

import advgap
from advgap.verify.api import min_linf_distance
from advgap.verify.bounds import crown_bounds
from advgap.verify.network import ReluNet


def load_net(path: str) -> ReluNet:
    data = np.load(path)
    depth = sum(name.startswith("W") for name in data.files)
    return ReluNet.from_layers([(data[f"W{k}"], data[f"b{k}"]) for k in range(depth)])


def crown_unstable(net: ReluNet, x: np.ndarray, delta: float) -> int:
    """Hidden ReLUs with l < 0 < u under CROWN on the L∞ box of radius delta (at most 1) around x, within [0, 1]."""
    radius = min(delta, 1.0)
    bounds = crown_bounds(net, np.clip(x - radius, 0.0, 1.0), np.clip(x + radius, 0.0, 1.0))
    return int(sum(np.count_nonzero((lo < 0) & (hi > 0)) for lo, hi in zip(bounds.lower, bounds.upper, strict=True)))


def engine_unstable(result: Any) -> int | None:
    """The engine's own count of unstable ReLUs left after tightening (an int or per-layer counts), if it has one."""
    value = getattr(result, "unstable", None)
    return None if value is None else int(np.sum(value))


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no inf: None means "no adversarial point at δ = 1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net")
    parser.add_argument("images")
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=None, help="passed to min_linf_distance when given")
    args = parser.parse_args()
    net = load_net(args.net)
    images = np.load(args.images)
    extra = {} if args.workers is None else {"workers": args.workers}
    with open(args.out, "w") as out:
        out.write(json.dumps({"advgap": advgap.__file__}) + "\n")
        out.flush()
        for index, x, label in zip(images["index"], images["x"], images["label"], strict=True):
            x = np.asarray(x, dtype=np.float64)
            start = time.monotonic()
            result = min_linf_distance(net, x, int(label), target=None, timeout=args.timeout, tol=args.tol, **extra)
            wall = time.monotonic() - start
            row = {
                "index": int(index), "lower": result.lower, "upper": finite_or_none(result.upper),
                "status": result.status.value, "target": result.target, "seconds": result.seconds, "wall": wall,
                "unstable": engine_unstable(result), "crown_unstable": crown_unstable(net, x, result.upper),
                "detail": result.detail,
            }
            out.write(json.dumps(row) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
