"""`advgap verify NET PROP`: answer one VNN-LIB property on one network within a time limit."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from advgap.cli.options import add_workers, check_output, check_seconds, check_workers
from advgap.experiment.vnncomp import answer
from advgap.formats.vnnlib import format_assignment
from advgap.models.loader import load_network

# Kept back from the time limit for the engine's last step, replay, output and interpreter exit (about 0.1 s without
# torch, which `verify` never imports): the engine gets `timeout * (1 - RESERVE_FRACTION) - EXIT_RESERVE_S` from the
# process start, reading the property included.
RESERVE_FRACTION = 0.02
EXIT_RESERVE_S = 0.1

EPILOG = """\
prints one word: holds (proven: no input in the box satisfies the output condition), violated (a counterexample
exists and replays through the original model: onnxruntime for .onnx files), timeout or unknown.
The time limit counts from the start of the process, including loading and parsing.
exit codes: 0 proven answer (holds or violated), 1 timeout or unknown, 2 bad input (file, format, arguments).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check a VNN-LIB property on a network (.onnx, .nnet, .npz or a bundled name)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("net", help="network: .onnx, .nnet, advgap .npz file, or bundled name (vanilla, adversarial)")
    p.add_argument("prop", type=Path, help="VNN-LIB property file")
    p.add_argument("--timeout", type=float, default=60.0, help="time limit in seconds (default: 60)")
    p.add_argument("--counterexample", type=Path,
                   help="write a counterexample here in VNN-COMP format (a file left there by an earlier run is "
                   "removed unless the answer is violated)")
    add_workers(p)
    p.set_defaults(handler=run, started=_command_start())


def run(args: argparse.Namespace) -> int:
    check_seconds(args.timeout)
    check_workers(args.workers)
    if args.counterexample is not None:
        check_output(args.counterexample, "--counterexample")
    network = load_network(args.net)
    if args.counterexample is not None:
        args.counterexample.unlink(missing_ok=True)  # an earlier run's counterexample is not this answer's
    outcome = answer(network, args.prop, args.started + args.timeout * (1.0 - RESERVE_FRACTION) - EXIT_RESERVE_S,
                     args.workers)
    if args.counterexample is not None and outcome.x is not None:
        args.counterexample.write_text(format_assignment(outcome.x, outcome.y), encoding="utf-8")
    print(outcome.answer.value)
    if outcome.detail:
        print(f"advgap: {outcome.detail} ({time.monotonic() - args.started:.2f} s)", file=sys.stderr)
    return 0 if outcome.answer.proven else 1


def _command_start() -> float:
    """time.monotonic() at the start of the command: the process start when run as `advgap verify`, else now."""
    now = time.monotonic()
    launched_as_cli = Path(sys.argv[0]).name in ("advgap", "__main__.py") and "verify" in sys.argv[1:]
    if not launched_as_cli:
        return now
    try:
        stat = Path("/proc/self/stat").read_text()
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return now
    return now - max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
