"""The reprojection study: closed forms on a contraction (encode∘decode halves every code), resuming that
measures no finished step again, and a tiny trained run through the CLI."""

import json

import numpy as np
import pytest
import torch

from latentatlas.cli import main
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import STUDIES, Judge, StudyContext, load_settings, run_study

D, K = 4, 3
SETTINGS = ["steps=10", "seeds=2", "n_codes=150", "tol=0.01"]


def contraction(folder, calls=None):
    """Codes N(0, I) in 4-D, decode = identity, encode = 0.5 x, so z_t = 0.5^t z_0; the judge's features are
    the codes and its logits z @ W (no bias: the predicted class of c z is that of z for every c > 0)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D, K, generator=g).double()
    codes = {s: torch.randn(n, D, generator=g).double() for s, n in (("train", 300), ("val", 50), ("test", 200))}

    def features(x):
        if calls is not None:
            calls.append(x.shape[0])
        return x, x @ w

    judge = Judge(features, codes["test"], codes["train"])
    ctx = StudyContext(name="halving", seed=0, folder=folder, codes=codes, judge=judge, encode=lambda x: 0.5 * x)
    return ctx, w


def test_contraction_follows_the_closed_form(tmp_path):
    ctx, w = contraction(tmp_path)
    settings = load_settings("reprojection", overrides=SETTINGS)
    result = run_study("reprojection", [ctx], settings)
    assert len(result.rows) == 2 * 11 and len(result.table.rows) == 11
    study = STUDIES.get("reprojection")(settings)
    for row in result.rows:
        z0 = study.chain(ctx, row["seed"])["codes"][0].double()
        t, norm = row["step"], z0.norm(dim=1).mean()
        scale = (z0 - z0.mean(0)).pow(2).sum(1).mean().sqrt()
        assert row["drift"] == pytest.approx(float((1 - 0.5 ** t) * norm / scale), rel=1e-5, abs=1e-12)
        if t:
            assert row["step_size"] == pytest.approx(float(0.5 ** t * norm / scale), rel=1e-5)
            assert row["pixel_change"] == pytest.approx(float(0.5 ** t * norm / D ** 0.5), rel=1e-5)
        confidence = ((0.5 ** t * z0) @ w).softmax(1).max(1).values.mean()
        assert row["confidence"] == pytest.approx(float(confidence), rel=1e-6)
        assert row["flipped"] == 0.0
    # step sizes halve, so the first step below tol is the first t with mean(0.5^t * norm / scale) < tol
    summary = study.summary(result.rows)
    steps = {r["step"]: r["step_size"] for r in summary if r["step"] > 0}
    expected = min(t for t, s in steps.items() if s < 0.01)
    assert study.convergence(summary)["converged_at"] == expected
    assert study.convergence(summary)["rate"] == pytest.approx(0.5, rel=1e-5)
    first, conf, flips, quality, where = result.findings
    assert first.startswith("The chain converges") and f"below 0.01 from step {expected}" in first
    assert "x0.5 per step" in first
    assert "confidence falls" in conf and f"{fmt_number(summary[0]['confidence'])} at step 0" in conf
    assert flips.startswith("0% of the images changed predicted class by step 10")
    assert quality.startswith("Image quality worsens") and fmt_number(summary[-1]["frechet"]) in quality
    assert where.startswith("The chain ends") and fmt_number(summary[-1]["nn_train_ratio"]) in where
    assert (result.folder / "reprojection.png").is_file()


def test_more_steps_resume_without_measuring_finished_steps_again(tmp_path):
    short = ["steps=3", "seeds=2", "n_codes=100"]
    first = run_study("reprojection", [contraction(tmp_path)[0]], load_settings("reprojection", overrides=short))
    calls = []
    ctx = contraction(tmp_path, calls)[0]       # a new context: as a new process would build it
    longer = run_study("reprojection", [ctx], load_settings("reprojection", overrides=["steps=5", *short[1:]]))
    # two new steps per seed, plus the step-0 classes each seed's flips are counted against
    assert len(calls) == 2 * 2 + 2
    assert longer.rows[:4] == first.rows[:4] and longer.rows[6:10] == first.rows[4:]
    fresh = run_study("reprojection", [contraction(tmp_path / "fresh")[0]],
                      load_settings("reprojection", overrides=["steps=5", *short[1:]]))
    for a, b in zip(fresh.rows, longer.rows, strict=True):     # the resumed chain is the chain made in one go
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-12) for k in a)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="reprojection.steps"):
        load_settings("reprojection", overrides=["steps=0"])
    with pytest.raises(ValueError, match="reprojection.tol"):
        load_settings("reprojection", overrides=["tol=0"])


def test_tiny_run_through_the_cli(tiny_run, capsys):
    assert main(["study", "reprojection", str(tiny_run), "--set", "steps=3", "--set", "seeds=1",
                 "--set", "n_codes=30", "--set", "n_real=200"]) == 0
    folder = tiny_run / "studies" / "reprojection"
    for name in ("config.yaml", "cells.jsonl", "table.csv", "table.md", "study.json", "summary.md", "reprojection.png"):
        assert (folder / name).is_file(), name
    saved = json.loads((folder / "study.json").read_text())
    rows = [json.loads(line)["values"] for line in (folder / "cells.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and len(saved["table"]["rows"]) == 4 and rows[0]["n_codes"] == 30
    # what must hold for any model: no drift and no flip at step 0, and the triangle inequality
    # mean ||z_t - z_0|| <= sum of the mean steps
    assert rows[0]["drift"] == 0 and rows[0]["flipped"] == 0 and 0 <= rows[0]["confidence"] <= 1
    assert rows[1]["drift"] == pytest.approx(rows[1]["step_size"], rel=1e-6)
    for t in (2, 3):
        assert rows[t]["drift"] <= sum(r["step_size"] for r in rows[1:t + 1]) * (1 + 1e-6)
    assert all(np.isfinite(r["frechet"]) and r["pixel_change"] >= 0 for r in rows[1:])
    # the findings quote the table
    quality = next(line for line in saved["findings"] if line.startswith("Image quality"))
    assert quality.endswith(f"lowest {fmt_number(min(r['frechet'] for r in rows))} at step "
                                          f"{min(range(4), key=lambda t: rows[t]['frechet'])}.")
    assert "- " + saved["findings"][0] in capsys.readouterr().out
