"""diffusion-steps on a known 5-component mixture (identity features): one fit per seed, reused by every cell
and by a resumed study; one DDIM step gives far worse samples than many; findings name the rows the table
marks; settings are validated."""

import dataclasses
import re
import statistics

import pytest

from latentatlas.runs.tables import fmt_number
from latentatlas.studies import load_settings, run_study
from latentatlas.studies.diffusion_steps import DiffusionSteps

SPEC = "ddpm:steps=40,iters=600,hidden=64,depth=2,batch_size=256"
STEPS = [1, 2, 5, 20, 40]


@pytest.fixture(scope="module")
def settings():
    return load_settings("diffusion-steps", overrides=[f"sampler={SPEC}", f"ddim_steps={STEPS}", "seeds=2",
                                                       "n_samples=1500"])


@pytest.fixture
def result(mixture_context, settings):
    return run_study("diffusion-steps", [mixture_context], settings)


SCHEDULES = [("ddpm", 1.0, 40), *(("ddim", 0.0, k) for k in STEPS), *(("ddim", 1.0, k) for k in STEPS[:-1])]


def _mean(result, method, eta, steps, value="frechet"):
    return statistics.mean(r[value] for r in result.rows if (r["method"], r["eta"], r["steps"]) == (method, eta, steps))


def test_every_seed_has_one_ancestral_cell_and_one_per_eta_and_step_count(result):
    """DDIM at eta 1 on all 40 steps is the DDPM sampler: not drawn twice."""
    for seed in (0, 1):
        drawn = sorted((r["method"], r["eta"], r["steps"]) for r in result.rows if r["seed"] == seed)
        assert drawn == sorted(SCHEDULES)
    saved = sorted(p.name for p in result.folder.iterdir() if p.suffix == ".pt")
    assert len(saved) == 2 and not any(name.endswith(".fit.pt") for name in saved)   # fit checkpoints removed


def test_one_deterministic_step_gives_far_worse_samples_than_many(result):
    # One step maps x_T to the clipped prediction of x_0: the five modes collapse towards their middle.
    one, many, ancestral = (_mean(result, *s) for s in (("ddim", 0.0, 1), ("ddim", 0.0, 40), ("ddpm", 1.0, 40)))
    assert one > 5 * many and one > 5 * ancestral
    assert _mean(result, "ddim", 0.0, 1, "recall") < 0.5 < 0.8 < _mean(result, "ddim", 0.0, 40, "recall")


def test_a_resumed_study_draws_from_the_saved_fits(mixture_context, settings, result):
    """Without the finished cells, the study loads each seed's saved sampler: the same draws, the same scores."""
    (result.folder / "cells.jsonl").unlink()
    mixture_context.cache.clear()
    again = run_study("diffusion-steps", [mixture_context], settings)
    key = lambda r: (r["seed"], r["method"], r["eta"], r["steps"])    # noqa: E731
    for before, after in zip(sorted(result.rows, key=key), sorted(again.rows, key=key)):
        assert key(before) == key(after)
        assert before["frechet"] == after["frechet"] and before["recall"] == after["recall"]


@pytest.mark.parametrize("tolerance", [0.05, 4.0])
def test_findings_name_the_rows_the_table_marks(result, settings, tolerance):
    """At the default tolerance no DDIM row matches this DDPM's samples (0.08); at 4 (5 x its distance) some do."""
    study = DiffusionSteps(dataclasses.replace(settings, tolerance=tolerance))
    table, findings = study.table(result.rows), study.findings(result.rows)
    labels = {0.0: "DDIM eta=0", 1.0: "DDIM eta=1"}
    assert [tuple(row[:2]) for row in table.rows] == [("DDPM", 40), *((labels[eta], k) for _, eta, k in SCHEDULES[1:])]
    marks = {tuple(row[:2]): row[-1] for row in table.rows}
    ddpm = _mean(result, "ddpm", 1.0, 40)
    best = min(SCHEDULES[1:], key=lambda s: _mean(result, *s))
    assert "best DDIM" in marks[labels[best[1]], best[2]] and sum("best DDIM" in m for m in marks.values()) == 1
    assert f"The best DDIM samples: {labels[best[1]]} on {best[2]} steps" in findings[1]
    matched = 0
    for line, eta in zip(findings[2:], (0.0, 1.0)):
        within = [k for m, e, k in SCHEDULES[1:] if e == eta and _mean(result, m, e, k) <= (1 + tolerance) * ddpm]
        assert line.startswith(labels[eta])
        if within:
            matched += 1
            assert "fewest steps matching DDPM" in marks[labels[eta], within[0]]
            assert f"within {fmt_number(1 + tolerance)} x DDPM's Fréchet distance are {within[0]} (" in line
        else:
            assert "no step count reaches" in line
    assert sum("fewest steps" in m for m in marks.values()) == matched == (0 if tolerance < 1 else 2)
    assert findings[0].startswith(f"Ancestral DDPM on all 40 steps: Fréchet distance {fmt_number(ddpm)}")
    assert (result.folder / "diffusion-steps.png").is_file()


@pytest.mark.parametrize("override, message", [
    ("sampler=gmm:k=5", "diffusion-steps.sampler: expected a ddpm spec (e.g. 'ddpm:iters=9000'), got 'gmm:k=5'"),
    ("sampler=ddpm:hidden=0", "diffusion-steps.sampler: sampler 'ddpm:hidden=0': hidden: expected an int >= 1"),
    ("ddim_steps=[10,300]", "diffusion-steps.ddim_steps: expected at most the schedule's 200 steps (sampler "
                            "'ddpm'), got [300]"),
    ("ddim_steps=[0]", "diffusion-steps.ddim_steps: expected an int >= 1, got 0"),
    ("etas=[0,1.5]", "diffusion-steps.etas: expected a finite number in [0, 1], got 1.5"),
    ("tolerance=-1", "diffusion-steps.tolerance: expected a finite number >= 0, got -1"),
])
def test_bad_settings_are_one_clear_error(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings("diffusion-steps", overrides=[override])
