"""What the training benchmarks share: the command-line arguments of those that train on full MNIST within a
wall-clock budget (gan_mnist.py, families_mnist.py), their table printer, and the alternating comparison of
the trainer with a plain loop (gan_throughput.py, face_throughput.py; its timing is timing.alternate)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from timing import alternate

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


SCORE_COLUMNS = [("FD", "frechet", ">8.2f"), ("prec", "precision", ">7.3f"), ("recall", "recall", ">7.3f"),
                 ("classes", "classes_covered", ">8")]   # the sample-quality columns of both tables


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """One line per row: ``columns`` are (header, key, format spec such as '<22' or '>8.2f'); a missing
    value prints as '-'."""
    def cell(value, spec: str) -> str:
        width = re.match(r"[<>]?\d+", spec).group(0)
        return f"{'-':{width}}" if value is None else f"{value:{spec}}"

    print("".join(cell(header, re.match(r"[<>]?\d+", spec).group(0)) for header, _, spec in columns))
    for row in rows:
        print("".join(cell(row.get(key), spec) for _, key, spec in columns))


def trainer_against_plain(ours, plain, repeats: int) -> dict[str, float]:
    """Alternate ``ours()`` and ``plain()`` (each returns images/s) ``repeats`` times through
    timing.alternate (every run, medians with min and max, load average), then the framework's cost;
    returns the medians."""
    med = alternate({"latentatlas trainer": ours, "plain PyTorch loop": plain}, repeats,
                    baseline="plain PyTorch loop", unit="images/s", rate=True, digits=0)
    print(f"framework cost: {100 * (1 - med['latentatlas trainer'] / med['plain PyTorch loop']):.1f} %")
    return med
