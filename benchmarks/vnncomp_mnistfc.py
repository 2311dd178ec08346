"""VNN-COMP 2021 mnistfc (784-256-256-10, 30 properties, 120 s each): run `advgap vnncomp` and print the table.

Usage: python benchmarks/vnncomp_mnistfc.py [--out results.csv] [--instances FILE]
The benchmark lies in ../shared/vnncomp_mnistfc beside the repository. Takes up to an hour (30 × 120 s).
"""

from __future__ import annotations

import sys
from pathlib import Path

from advgap.cli import main

BENCHMARK_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "vnncomp_mnistfc"

if __name__ == "__main__":
    extra = sys.argv[1:]
    args = ["vnncomp", str(BENCHMARK_DIR), "--expected", str(BENCHMARK_DIR / "expected.csv")]
    sys.exit(main([*args, *extra]))
