"""The baseline engine of a benchmark: a git worktree of an older commit, beside the working tree's engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def baseline_worktree(rev: str, directory: Path) -> Path:
    """A git worktree of `rev` at `directory`, added when missing; refuses one checked out at another commit."""
    want = subprocess.run(["git", "-C", str(REPO), "rev-parse", f"{rev}^{{commit}}"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if not directory.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(directory.resolve()), want],
                       check=True, capture_output=True)
    have = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if have != want:
        sys.exit(f"{directory} is checked out at {have[:7]}, not {rev} ({want[:7]}): remove it or pass --worktree")
    return directory
