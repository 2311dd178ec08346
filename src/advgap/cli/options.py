"""Argument checks shared by the subcommands, all run before any work starts: image selections, time limits and
output paths."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from advgap.errors import ConfigError
from advgap.experiment.config import MAX_SEED


def parse_images(text: str) -> tuple[int, int]:
    """'N' → (0, N); 'A:B' → (A, B). Raises ConfigError on anything else."""
    try:
        if ":" in text:
            start, stop = (int(part) for part in text.split(":"))
            return start, stop
        return 0, int(text)
    except ValueError as exc:
        raise ConfigError(f"--images {text!r}: expected N or A:B (test image indices)") from exc


def check_seconds(value: float, option: str = "--timeout") -> float:
    """`value` if it is a positive, finite number of seconds, else ConfigError."""
    if not 0 < value < math.inf:
        raise ConfigError(f"{option} must be a positive number of seconds, got {value}")
    return value


def add_workers(parser: argparse.ArgumentParser) -> None:
    """`--workers N`: processes for a property's per-term searches (default: all cores)."""
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="processes for the searches of a property's terms (default: all cores)")


def check_workers(workers: int) -> int:
    """`workers` if it is at least 1, else ConfigError."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    return workers


def check_seed(seed: int) -> int:
    """`seed` if numpy and torch accept it (an unsigned 64-bit integer), else ConfigError."""
    if not 0 <= seed < MAX_SEED:
        raise ConfigError(f"--seed must be an integer in [0, 2**64), got {seed}")
    return seed


def check_output(path: Path, option: str, *, directory: bool = False, make_parents: bool = False) -> None:
    """ConfigError unless `path` can be written: a file (or, with `directory`, a folder) that is not the other
    kind, in a writable folder — its parent, or with `make_parents` the nearest folder that exists."""
    kind = "folder" if directory else "file"
    if path.exists() and path.is_dir() != directory:
        raise ConfigError(f"{option} {path}: is {'a file' if directory else 'a directory'}, not a {kind}")
    ancestor = path.parent
    while make_parents and not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        state = "is not a folder" if ancestor.exists() else "does not exist"
        raise ConfigError(f"{option} {path}: cannot write a {kind} there ({ancestor} {state})")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write a {kind} there ({ancestor}: {exc.strerror})") from exc
