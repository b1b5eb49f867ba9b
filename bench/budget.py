"""Command-line arguments shared by the benchmarks that train on full MNIST within a wall-clock budget
(gan_mnist.py, families_mnist.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def budget_arguments(doc: str, *, only: str, runs_dir: str) -> argparse.Namespace:
    """--mnist (the IDX folder), --minutes (training budget per model), --only (comma-separated names),
    --runs-dir (where the run folders go) and --json (also write the table there)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", default=only)
    parser.add_argument("--runs-dir", default=runs_dir)
    parser.add_argument("--json", default=None, help="also write the table to this file")
    return parser.parse_args()
