"""kde-bandwidth: on a lattice of well-separated training points (identity features) a KDE copies them when
its bandwidth is small, the findings name the rows the table marks, and the CLI runs it on a trained run."""

import math

import pytest
import torch

from latentatlas.cli import main
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import Judge, StudyContext, load_settings, run_study

FACTORS = [0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0]
N, SEEDS = 1000, 2


@pytest.fixture(scope="module")
def lattice_study(tmp_path_factory):
    """25 training points on a unit lattice; held-out and validation points uniform around it (2-d)."""
    g = torch.Generator().manual_seed(0)
    train = torch.stack(torch.meshgrid(torch.arange(5.), torch.arange(5.), indexing="ij"), -1).reshape(-1, 2)
    codes = {"train": train, "val": torch.rand(1000, 2, generator=g) * 5 - 0.5,
             "test": torch.rand(2000, 2, generator=g) * 5 - 0.5}
    ctx = StudyContext(name="lattice", seed=0, folder=tmp_path_factory.mktemp("lattice"), codes=codes,
                       judge=Judge(lambda x: x, codes["test"], train))
    settings = load_settings("kde-bandwidth", overrides=[f"factors={FACTORS}", f"seeds={SEEDS}", f"n_samples={N}"])
    return run_study("kde-bandwidth", [ctx], settings)


def test_copy_fraction_rises_as_the_bandwidth_falls(lattice_study):
    factors = [0.0, *FACTORS]       # factor 0: the training points themselves, every one a copy
    copy = [sum(r["copy_fraction"] for r in lattice_study.rows if r["factor"] == f) / SEEDS for f in factors]
    assert copy[0] == 1.0
    # The kernel noise at 0.05 x Scott (0.04) is a third of the held-out 5 % nearest-neighbour distance
    # (~0.13 for unit density), so P(copy) = P(Rayleigh < 3) ~ 0.99.
    assert copy[1] > 0.95
    # Monotone up to sampling noise: each mean is over SEEDS * N Bernoulli draws, so allow 3 sd of the
    # difference of two such means (common random numbers across factors make the real noise smaller).
    for f_small, f_big, c_small, c_big in zip(factors, factors[1:], copy, copy[1:]):
        p = max(c_small, c_big)
        tolerance = 3 * math.sqrt(2 * p * (1 - p) / (SEEDS * N))
        assert c_big <= c_small + tolerance, (f_small, c_small, f_big, c_big)
    assert copy[-1] < 0.1     # at 2 x Scott samples are about as far from the lattice as new points (0.05)


def _column(table, name):
    i = table.header.index(name)
    return [float(str(row[i]).split(" ± ")[0]) for row in table.rows]


def test_findings_name_the_rows_the_table_marks(lattice_study):
    table, findings = lattice_study.table, lattice_study.findings
    marks = [row[-1] for row in table.rows]
    factors, fd, copy = _column(table, "factor"), _column(table, "Fréchet distance"), _column(table, "copy fraction")
    best = next(i for i, m in enumerate(marks) if "best FD" in m)
    assert fd[best] == min(fd[1:])      # among the KDE rows (factor > 0)
    assert findings[0].startswith(f"Fréchet distance is lowest at {fmt_number(factors[best])} x Scott's bandwidth")
    scott = factors.index(1.0)
    assert "Scott's rule" in marks[scott]
    threshold = 2 * max(copy[scott], 0.05)
    onset = max(i for i in range(len(factors)) if copy[i] > threshold)
    assert "copying onset" in marks[onset] and sum("copying onset" in m for m in marks) == 1
    assert f"the largest factor where it exceeds {fmt_number(threshold)}" in findings[1]
    assert f"is {fmt_number(factors[onset])} x" in findings[1]
    assert factors[0] == 0 and "training codes (bandwidth 0)" in marks[0]
    assert f"have copy fraction {fmt_number(copy[0])}; " in findings[2]
    mostly = max(i for i in range(1, len(factors)) if copy[i] > 0.5 * copy[0])
    assert "of bandwidth 0" in marks[mostly]
    assert f"({fmt_number(0.5 * copy[0])}) up to {fmt_number(factors[mostly])} x" in findings[2]
    inside = factors[best] <= factors[onset]
    assert ("inside the copying regime" if inside else "outside the copying regime") in findings[3]


def test_settings_are_checked():
    for bad in ("factors=[]", "factors=[0.5,0]", "copy_ratio=1"):
        with pytest.raises(ValueError, match="kde-bandwidth"):
            load_settings("kde-bandwidth", overrides=[bad])


def test_cli_on_a_trained_run(tiny_run, capsys):
    run = tiny_run
    assert main(["study", "kde-bandwidth", str(run), "--set", "factors=[0.05,1]", "--set", "seeds=1",
                 "--set", "n_samples=64", "--set", "n_real=200"]) == 0
    out = capsys.readouterr().out
    folder = run / "studies" / "kde-bandwidth"
    for name in ("study.json", "table.csv", "table.md", "summary.md", "kde-bandwidth.png", "cells.jsonl"):
        assert (folder / name).is_file(), name
    assert "- Fréchet distance is lowest at" in out and "- Copy fraction is" in out
    assert len((folder / "cells.jsonl").read_text().splitlines()) == 3      # factors 0, 0.05 and 1
