"""The same `advgap run` study with the local executor and with Ray on this machine, in one run: Ray's overhead.

    .venv/bin/python benchmarks/ray_overhead.py [--images 50] [--models vanilla] [--workers 2] [--rounds 1]

Each round runs the study local, ray, ray, local (so that a drift of the machine's load falls on both alike), each
into a fresh results folder, and times `run_experiment` alone: the Ray cluster (a local one of --workers CPUs, on
127.0.0.1) is started before and stopped after, and its start is reported apart. The stored rows of every run are
checked against the first local one (same keys and statuses, attacks identical, exact intervals within tol). The
vanilla net is the hard case for overhead: its exact tasks are the shortest (a median ~0.1 s per image).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from advgap.experiment.config import RunConfig
from advgap.experiment.executors import open_executor
from advgap.experiment.runner import run_experiment
from advgap.experiment.store import ResultStore


def _rows(folder: Path) -> dict:
    with ResultStore.read(folder) as store:
        return {r.key: r for r in store.results()}


def _same(a: dict, b: dict, tol: float) -> bool:
    if a.keys() != b.keys():
        return False
    for key, row in a.items():
        other = b[key]
        if row.status != other.status:
            return False
        if key[3] == "exact":
            if abs(row.lower - other.lower) > tol or abs(row.upper - other.upper) > tol:
                return False
        elif row.delta != other.delta:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--models", nargs="+", default=["vanilla"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "ray": []}
    starts: list[float] = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for k, kind in enumerate(["local", "ray", "ray", "local"] * args.rounds):
            config = RunConfig(models=tuple(args.models), images=(0, args.images), workers=args.workers,
                               out=Path(tmp) / f"{k}-{kind}")
            began = time.perf_counter()
            with open_executor(kind, args.workers) as executor:
                if kind == "ray":
                    starts.append(time.perf_counter() - began)
                summary = run_experiment(config, progress=False, executor=executor)
            assert summary.complete and summary.failed == 0, summary
            times[kind].append(summary.seconds)
            rows = _rows(config.out)
            reference = reference or rows
            same = _same(rows, reference, config.tol)
            print(f"{kind:5s} {summary.seconds:7.1f} s  {summary.executor}  rows {len(rows)}, "
                  f"{'same as' if same else 'DIFFERENT from'} the first local run", flush=True)
    local, ray = statistics.mean(times["local"]), statistics.mean(times["ray"])
    print(f"\n{args.images} images of {', '.join(args.models)}, {args.workers} workers: local {local:.1f} s, "
          f"ray {ray:.1f} s (mean of {len(times['ray'])}); ray / local = {ray / local:.3f}; "
          f"a local Ray cluster starts in {statistics.mean(starts):.1f} s (not counted)")


if __name__ == "__main__":
    main()
