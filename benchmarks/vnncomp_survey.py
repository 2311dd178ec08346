"""A survey of VNN-COMP benchmarks: `advgap verify` on the first instances of every network, the working tree's
engine beside a baseline commit's, one process per instance.

    .venv/bin/python benchmarks/vnncomp_survey.py ROOT [--benchmarks oval21 verivital ...] [--per-net 2]
        [--timeout 60] [--baseline d849fa8 | --baseline none] [--worktree DIR]

ROOT holds one folder per benchmark as VNN-COMP ships them (github.com/stanleybak/vnncomp2021/benchmarks: a
`*instances.csv` of `network,property,timeout` rows, paths relative to the folder; .onnx / .vnnlib, gzipped or
not). Per network the first --per-net rows are run with `advgap verify NET PROP --timeout T` (T = --timeout, not
the competition's limit), first the baseline (PYTHONPATH=<worktree>/src, `git worktree add` as in deeper_nets.py),
then the working tree (PYTHONPATH=src), so the two never share the cores. Printed: one markdown row per instance —
each engine's answer (holds / violated / timeout / unknown, or the refusal's first words) and wall seconds, process
start included — and a count of answers per engine. Answers of the two engines that contradict each other (holds
against violated) are flagged: neither is trusted then.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _worktree import baseline_worktree

REPO = Path(__file__).resolve().parents[1]
ANSWERS = ("holds", "violated", "timeout", "unknown")


def instances(folder: Path, per_net: int) -> list[tuple[Path, Path]]:
    """The first `per_net` (network, property) rows of each network in the folder's instances file."""
    found = sorted(folder.glob("*instances.csv"))
    if not found:
        return []
    rows: list[tuple[Path, Path]] = []
    taken: dict[str, int] = {}
    with found[0].open() as fh:
        for row in csv.reader(fh):
            if len(row) < 2:
                continue
            net, prop = row[0].strip(), row[1].strip()
            if taken.get(net, 0) < per_net:
                taken[net] = taken.get(net, 0) + 1
                rows.append((folder / net, folder / prop))
    return rows


def plain(path: Path, scratch: Path) -> Path:
    """`path`, or its gunzipped copy in `scratch` when only `path`.gz exists."""
    if path.exists() or not path.with_name(path.name + ".gz").exists():
        return path
    target = scratch / path.name
    if not target.exists():
        with gzip.open(path.with_name(path.name + ".gz"), "rb") as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def verify(src: Path, net: Path, prop: Path, timeout: float) -> tuple[str, float]:
    """The answer of `advgap verify` with `src` first on the path, and its wall seconds."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "advgap", "verify", str(net), str(prop), "--timeout",
                               str(timeout)], env=env, capture_output=True, text=True, timeout=timeout * 3 + 120)
    except subprocess.TimeoutExpired:
        return "killed (3× the limit)", time.monotonic() - start
    wall = time.monotonic() - start
    first = (proc.stdout.strip().splitlines() or [""])[0].strip()
    if first in ANSWERS:
        return first, wall
    message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"error: {message[:90]}", wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--benchmarks", nargs="+", help="folder names under ROOT (default: all with instances)")
    parser.add_argument("--per-net", type=int, default=2, help="instances per network (default 2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per instance (default 60)")
    parser.add_argument("--baseline", default="d849fa8", help="git revision of the baseline engine, or 'none'")
    parser.add_argument("--worktree", type=Path, help="its git worktree (default runs/baseline-REV)")
    args = parser.parse_args()
    names = args.benchmarks or sorted(p.name for p in args.root.iterdir() if p.is_dir())
    engines = [("new", REPO / "src")]
    if args.baseline != "none":
        tree = baseline_worktree(args.baseline, args.worktree or REPO / "runs" / f"baseline-{args.baseline}")
        engines.insert(0, (f"baseline {args.baseline}", tree / "src"))
    print(f"`advgap verify --timeout {args.timeout:g}`, first {args.per_net} instances per network; wall seconds")
    print()
    print("| benchmark | network | property | " + " | ".join(f"{name} | s" for name, _ in engines) + " |")
    print("|---|---|---|" + "---|--:|" * len(engines))
    counts = {name: {} for name, _ in engines}
    with tempfile.TemporaryDirectory() as scratch:
        for bench in names:
            for net, prop in instances(args.root / bench, args.per_net):
                net, prop = plain(net, Path(scratch)), plain(prop, Path(scratch))
                cells, answers = [], []
                for name, src in engines:
                    answer, wall = verify(src, net, prop, args.timeout)
                    word = answer.split(":")[0]
                    counts[name][word] = counts[name].get(word, 0) + 1
                    answers.append(answer)
                    cells.append(f"{answer} | {wall:.1f}")
                clash = {"holds", "violated"} <= set(answers)
                print(f"| {bench} | {net.stem} | {prop.stem} | " + " | ".join(cells) + " |"
                      + (" **contradiction**" if clash else ""), flush=True)
    print()
    for name, _ in engines:
        print(f"{name}: " + ", ".join(f"{word} {n}" for word, n in sorted(counts[name].items())))


if __name__ == "__main__":
    main()
