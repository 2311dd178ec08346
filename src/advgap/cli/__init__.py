"""The `advgap` command line: argument parsing, one call per subcommand, messages and exit codes.

Each subcommand lives in its own module under `advgap.cli` and exposes `register(subparsers)`, which adds its
parser and sets `handler` to a function taking the parsed namespace and returning an exit code. Only the module of
the subcommand named on the command line is imported (all of them for `advgap --help`), so `advgap verify` never
pays for importing torch or matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from advgap import __version__
from advgap.errors import AdvgapError

SUBCOMMANDS = ("train", "evaluate", "mindist", "verify", "vnncomp", "run")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with `argv`, only the subcommand it names (if any) is registered."""
    parser = argparse.ArgumentParser(
        prog="advgap",
        description="Measure how far first-order attacks are from the exact closest adversarial example.",
    )
    parser.add_argument("--version", action="version", version=f"advgap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    named = next((arg for arg in argv or () if not arg.startswith("-")), None)
    for name in (named,) if named in SUBCOMMANDS else SUBCOMMANDS:
        importlib.import_module(f"advgap.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except AdvgapError as exc:
        print(f"advgap: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("advgap: interrupted", file=sys.stderr)
        return 130
