"""`advgap vnncomp DIR`: run a VNN-COMP benchmark directory and compare with the expected answers."""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
from pathlib import Path

from advgap.cli.options import add_workers, check_output, check_workers
from advgap.experiment.vnncomp import comparison_table, read_expected, read_instances, run_instances, summarize

EPILOG = """\
each instance gets the timeout of instances.csv, counted from reading its property (networks are loaded once).
exit codes: 0 no wrong answer, 1 some proven answer contradicts expected.csv, 2 bad input.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "vnncomp",
        help="run a VNN-COMP benchmark directory (instances.csv) and compare with expected answers",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dir", type=Path, help="benchmark directory; paths in the CSV files are relative to it")
    p.add_argument("--instances", type=Path, help="network,property,timeout_s rows (default: DIR/instances.csv)")
    p.add_argument("--expected", type=Path, help="network,property,expected,... with a header row")
    p.add_argument("--out", type=Path, help="write network,property,result,seconds rows here")
    add_workers(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_workers(args.workers)
    instances = read_instances(args.instances or args.dir / "instances.csv")
    expected = read_expected(args.expected) if args.expected else {}
    if args.out is not None:
        check_output(args.out, "--out")
    results = []
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(args.out.open("w", newline="", encoding="utf-8")) if args.out else None
        writer = csv.writer(out) if out else None
        if writer:
            writer.writerow(["network", "property", "result", "seconds"])
        for k, r in enumerate(run_instances(args.dir, instances, args.workers), start=1):
            results.append(r)
            print(
                f"[{k}/{len(instances)}] {r.instance.property}: {r.answer.value} ({r.seconds:.1f} s)", file=sys.stderr
            )
            if writer:
                writer.writerow([r.instance.network, r.instance.property, r.answer.value, f"{r.seconds:.3f}"])
                out.flush()
    print(comparison_table(results, expected))
    if not expected:
        return 0
    summary = summarize(results, expected)
    unchecked = f", unchecked {summary.unchecked}" if summary.unchecked else ""
    print(f"solved {summary.solved}, wrong {len(summary.wrong)}, unsolved {summary.unsolved}{unchecked}")
    for r in summary.wrong:
        print(f"WRONG: {r.instance.network} {r.instance.property}: answered {r.answer.value}", file=sys.stderr)
    return 1 if summary.wrong else 0
