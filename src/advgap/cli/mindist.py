"""`advgap mindist`: the guaranteed closest adversarial example (minimal L∞ distance) of MNIST test images."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from advgap.cli.executor import add_executor_arguments, executor_from_args
from advgap.cli.options import check_seconds, check_workers, parse_images
from advgap.data.mnist import mnist_arrays
from advgap.errors import ConfigError
from advgap.models.loader import load_network
from advgap.verify.api import min_linf_distance
from advgap.verify.crosscheck import cross_check
from advgap.verify.engines import ENGINE_NAMES, get_engine
from advgap.verify.network import ReluNet
from advgap.verify.result import DistanceResult


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "mindist",
        help="exact minimal L∞ distance to an adversarial example, per test image",
        description="Certified minimal L∞ distance δ (pixel values in [0, 1]; 1/255 is one grey level) from each "
        "selected MNIST test image to a point whose target logit reaches the true label's logit.",
    )
    p.add_argument("--model", default="vanilla", metavar="vanilla|adversarial|PATH",
                   help="a bundled net or a network file (.npz, .onnx, .nnet); default vanilla")
    p.add_argument("--images", default="0:10", metavar="N|A:B", help="first N test images or indices A..B-1")
    p.add_argument("--target", type=int,
                   help="one target class, images of that label skipped (default: the closest over all classes)")
    p.add_argument("--engine", choices=ENGINE_NAMES, default="native", help="exact engine (default native)")
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds per image (default 60)")
    p.add_argument("--tol", type=float, default=1e-3, help="certified interval width in δ units (default 1e-3)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="processes a native search still open after a second may use, or with --executor ray and "
                   "no --ray-address the CPUs of the local cluster (default: all cores)")
    p.add_argument("--cross-check", action="store_true",
                   help="run the other engine too and report every disagreement beyond --tol")
    p.add_argument("--data-dir", help="directory with the MNIST files (default: $ADVGAP_DATA_DIR or bundled)")
    p.add_argument("--json", action="store_true", help="one JSON object per image and line on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_executor_arguments(p)
    p.set_defaults(handler=run)


def _row(index: int, label: int, predicted: int, result: DistanceResult | None, target: int | None) -> dict:
    """The output record of one image; without a result the image was skipped (misclassified, or its label is the
    target)."""
    if result is None:
        status = "misclassified" if predicted != label else "label_is_target"
        return {"index": index, "label": label, "predicted": predicted, "target": target, "lower": None,
                "upper": None, "status": status, "seconds": 0.0, "engine": None}
    return {
        "index": index, "label": label, "predicted": predicted, "target": result.target,
        "lower": result.lower, "upper": None if np.isinf(result.upper) else result.upper,
        "status": result.status.value, "seconds": round(result.seconds, 4), "engine": result.engine,
        "lower_px": result.lower * 255, "upper_px": None if np.isinf(result.upper) else result.upper * 255,
    }


@dataclass(frozen=True)
class _Job:
    """What every image's search needs besides the net and the data."""

    target: int | None
    timeout: float
    tol: float
    engine: str
    workers: int
    cross_check: bool


_STATE: dict[str, Any] = {}  # what a process that solves images holds (set by `_init`)


def _init(net: ReluNet, images: np.ndarray, labels: np.ndarray, job: _Job) -> None:
    _STATE.update(net=net, images=images, labels=labels, job=job)


def _solve(index: int) -> dict:
    """The output row of one test image: its certified distance, and the other engine's where cross-checked."""
    net, job = _STATE["net"], _STATE["job"]
    x, label = _STATE["images"][index].astype(np.float64), int(_STATE["labels"][index])
    predicted = int(net.predict(x))
    result = None
    if predicted == label != job.target:
        result = min_linf_distance(net, x, label, job.target, job.timeout, job.tol, job.engine, job.workers)
    row = _row(index, label, predicted, result, job.target)
    if result is not None and job.cross_check:
        other = _other(job.engine)
        second = min_linf_distance(net, x, label, job.target, job.timeout, job.tol, other)
        row["cross_check"] = {"engine": other, "lower": second.lower, "upper": second.upper,
                              "status": second.status.value, "seconds": round(second.seconds, 4),
                              "disagreement": cross_check(result, second, job.tol)}
    return row


def _other(engine: str) -> str:
    """The engine a cross-check compares `engine` with."""
    return next(e for e in ENGINE_NAMES if e != engine)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.tol < 1:
        raise ConfigError(f"--tol must lie in (0, 1), got {args.tol}")
    check_seconds(args.timeout)
    check_workers(args.workers)
    net = load_network(args.model).net
    if args.target is not None and not 0 <= args.target < net.n_outputs:
        raise ConfigError(f"--target {args.target}: the net has classes 0..{net.n_outputs - 1}")
    images, labels = mnist_arrays("test", args.data_dir)
    start, stop = parse_images(args.images)
    if not 0 <= start < stop <= len(images):
        raise ConfigError(f"--images {args.images}: indices must lie in [0, {len(images)}]")
    get_engine(args.engine).require()  # fail once, not in every image
    if args.cross_check:
        get_engine(_other(args.engine)).require()
    # local: the images one after another in this process, each search on --workers processes;
    # ray: one image per task, each search on its task's CPU.
    ray = args.executor == "ray"
    job = _Job(args.target, args.timeout, args.tol, args.engine, 1 if ray else args.workers, args.cross_check)
    disagreements = failed = 0
    finished: dict[int, dict | None] = {}  # rows not printed yet: they are printed in image order
    printed = start
    bar = tqdm(total=stop - start, desc="mindist", unit="image", disable=args.no_progress, file=sys.stderr)
    with executor_from_args(args, args.workers if ray else 1) as executor, bar:
        for outcome in executor.imap(_solve, range(start, stop), _init, (net, images, labels, job)):
            bar.update(1)
            finished[outcome.task] = outcome.value
            if outcome.error is not None:
                failed += 1
                tqdm.write(f"advgap: image {outcome.task} failed: {outcome.error}", file=sys.stderr)
            while printed in finished:
                row = finished.pop(printed)
                printed += 1
                if row is not None:
                    disagreements += row.get("cross_check", {}).get("disagreement") is not None
                    _print(row, args.json)
    if ray:
        print(f"advgap: {executor.describe()}", file=sys.stderr)
    if args.cross_check:
        print(f"cross-check: {disagreements} disagreement(s) beyond tol {args.tol}", file=sys.stderr)
    if failed:
        print(f"advgap: {failed} image(s) failed", file=sys.stderr)
    return 1 if disagreements or failed else 0


def _print(row: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(row), flush=True)
        return
    if row["status"] == "misclassified":
        tqdm.write(f"image {row['index']}: label {row['label']} predicted {row['predicted']} — misclassified, skipped")
        return
    if row["status"] == "label_is_target":
        tqdm.write(f"image {row['index']}: label {row['label']} is the target — skipped")
        return
    upper = "inf" if row["upper"] is None else f"{row['upper']:.5f}"
    tqdm.write(f"image {row['index']}: label {row['label']} target {row['target']} δ in [{row['lower']:.5f}, {upper}] "
               f"({row['lower'] * 255:.2f} px) {row['status']} {row['seconds']:.2f}s {row['engine']}")
    if "cross_check" in row:
        cc = row["cross_check"]
        verdict = cc["disagreement"] or "agrees"
        tqdm.write(f"    {cc['engine']}: [{cc['lower']:.5f}, {cc['upper']:.5f}] {cc['status']} "
                   f"{cc['seconds']:.2f}s — {verdict}")
