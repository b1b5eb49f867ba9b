"""The regularisation study on a tiny trained VAE: one short training per beta inside the study folder, an
autoencoder at beta 0, KL and one-Gaussian likelihoods checked against their definitions, finished variants
reused (no training on a rerun), an interrupted one resumed, and findings that agree with the table."""

import csv
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, spearmanr

from latentatlas.runs.session import as_session
from latentatlas.runs.store import Run
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import load_settings, variants
from tests.studies.conftest import run_on
from latentatlas.training import trainer

TINY = {"name": "tiny", "seed": 0, "data": {"name": "mnist", "limit": 600},
        "model": {"family": "vae", "latent_dim": 4, "width": 8},
        "train": {"epochs": 1, "batch_size": 64, "progress": False}, "sample": {"samplers": ["prior"], "n": 64},
        "evaluate": {"metrics": ["frechet"], "n_real": 1000}}
SETTINGS = ["betas=[0, 0.1, 4]", "epochs=2", "ks=[1, 2]", "n_samples=200", "n_real=200"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, run_maker):
    return run_maker(tmp_path_factory.mktemp("runs"), TINY)


class Spy:
    """Wraps train_session: records (variant name, resume) of every training."""

    def __init__(self, monkeypatch):
        self.calls, real = [], variants.train_session

        def train_session(config, *, resume=False):
            self.calls.append((config.name, resume))
            return real(config, resume=resume)

        monkeypatch.setattr(variants, "train_session", train_session)


def study(run, *overrides, fresh=False, ctx=None):
    """Run the study (on a new context of ``run``, or on ``ctx`` with its Judge already built)."""
    return run_on("regularisation", run, SETTINGS, *overrides, fresh=fresh, ctx=ctx)


@pytest.fixture(scope="module")
def first(tiny_run):
    mp = pytest.MonkeyPatch()
    spy = Spy(mp)
    result, ctx = study(tiny_run)
    mp.undo()
    return result, ctx, spy.calls


def test_one_training_per_beta_inside_the_study_folder(first, tiny_run):
    result, _, calls = first
    assert calls == [("beta-0", False), ("beta-0.1", False), ("beta-4", False)]
    runs = tiny_run / "studies" / "regularisation" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["beta-0", "beta-0.1", "beta-4"]
    for name in ("beta-0", "beta-0.1", "beta-4"):
        run = Run.open(runs / name)
        for f in ("checkpoints/best.pt", "latents.npz"):
            assert (run.path / f).is_file()
        assert run.config.seed == 0 and run.config.train.epochs == 2 and run.config.parent == str(tiny_run)
        assert run.read_metrics()["train"]["epochs_run"] == 2
    assert [r["beta"] for r in result.rows] == [0.0, 0.1, 4.0]
    for f in ("table.csv", "table.md", "study.json", "summary.md", "regularisation.png"):
        assert (result.folder / f).is_file(), f


def test_beta_zero_is_an_autoencoder_and_the_others_are_beta_vaes(tiny_run):
    runs = tiny_run / "studies" / "regularisation" / "runs"
    ae = Run.open(runs / "beta-0")
    assert ae.config.model.family == "ae" and not hasattr(ae.config.model, "kl_weight")
    assert "z_logvar" not in ae.load_latents()
    for beta in (0.1, 4):
        model = Run.open(runs / f"beta-{beta:g}").config.model
        assert model.family == "vae" and model.kl_weight == beta and model.latent_dim == 4 and model.width == 8


def test_kl_is_the_models_own_and_falls_as_beta_rises(first):
    result, _, _ = first
    rows = {r["beta"]: r for r in result.rows}
    assert rows[0.0]["kl"] is None
    assert rows[0.1]["kl"] > 2 * rows[4.0]["kl"] > 0
    session = as_session(result.folder / "runs" / "beta-4")
    held = session.data.part("val")
    with torch.no_grad():
        kl = session.model.encode(held.images.float() / 255).kl().mean()
    assert rows[4.0]["kl"] == pytest.approx(float(kl), rel=1e-4)


def test_one_gaussian_likelihood_matches_scipy_and_one_component_gains_nothing(first):
    result, _, _ = first
    for row in result.rows:
        session = as_session(result.folder / "runs" / f"beta-{row['beta']:g}")
        z = variants.codes(session, "train").double().numpy()
        held = variants.heldout_codes(session).double().numpy()
        cov = np.cov(z.T, bias=True) + 1e-6 * np.eye(z.shape[1])
        expected = multivariate_normal(z.mean(0), cov).logpdf(held).mean()
        assert row["gaussian_heldout_loglik"] == pytest.approx(expected, abs=1e-6)
        assert row["loglik_gain"] == pytest.approx(row["gmm_heldout_loglik"] - row["gaussian_heldout_loglik"])
        if row["bic_k"] == 1:
            assert abs(row["loglik_gain"]) < 1e-6


def test_scores_come_from_the_parent_judge(first):
    result, ctx, _ = first
    row = next(r for r in result.rows if r["beta"] == 0.1)
    session = as_session(result.folder / "runs" / "beta-0.1")
    z = session.model.prior_sample(200, generator=ctx.generator("regularisation", 0.1, "prior"))
    assert ctx.judge.score(session.code_map.decode(z))["frechet"] == pytest.approx(row["prior_frechet"])
    assert row["frechet_gain"] == pytest.approx(row["prior_frechet"] - row["gmm_frechet"])


def test_findings_agree_with_the_table(first):
    result, _, _ = first
    with open(result.folder / "table.csv") as fh:
        table = list(csv.DictReader(line for line in fh if not line.startswith("#")))   # notes: # lines
    assert [float(r["β"]) for r in table] == [r["beta"] for r in result.rows]
    rows = result.rows
    k_line, one_line, gain_line, fd_line, pr_line, kl_line = result.findings
    ks = [r["bic_k"] for r in rows]
    if len(set(ks)) > 1:
        assert f"ρ = {spearmanr([r['beta'] for r in rows], ks).statistic:+.2f}" in k_line
    else:
        assert "is constant" in k_line and "ρ" not in k_line
    fewest = min(ks)
    assert one_line.startswith("One Gaussian suffices") if fewest == 1 else f"components are k={fewest} " in one_line
    for r in rows:
        won = f"{r['beta']:g} (by {fmt_number(r['prior_frechet'] - r['gmm_frechet'])}," in fd_line
        assert won == (r["prior_frechet"] > r["gmm_frechet"])
    for r in rows:
        assert (f"β={r['beta']:g}: {fmt_number(r['prior_precision'])} / {fmt_number(r['prior_recall'])} -> "
                f"{fmt_number(r['gmm_precision'])} / {fmt_number(r['gmm_recall'])}") in pr_line
    assert kl_line.startswith("The KL term") and "β=0.1" in kl_line and "β=4" in kl_line


def test_a_rerun_reuses_finished_variants(first, tiny_run, monkeypatch):
    result, ctx, _ = first
    spy = Spy(monkeypatch)
    again, _ = study(tiny_run, fresh=True, ctx=ctx)    # every cell again: no variant trains again
    assert spy.calls == []
    assert again.rows == result.rows


def test_an_interrupted_variant_resumes_to_the_numbers_of_an_uninterrupted_one(first, tiny_run, monkeypatch):
    result, ctx, _ = first
    shutil.rmtree(result.folder / "runs" / "beta-4")
    train_epoch = trainer._Trainer.train_epoch

    def killed_in_the_second_epoch(self):
        if self.state.epoch == 1:
            raise KeyboardInterrupt
        return train_epoch(self)

    monkeypatch.setattr(trainer._Trainer, "train_epoch", killed_in_the_second_epoch)
    with pytest.raises(trainer.TrainingInterrupted):
        study(tiny_run, "betas=[4]", fresh=True, ctx=ctx)
    assert (result.folder / "runs" / "beta-4" / "checkpoints" / "last.pt").is_file()
    monkeypatch.setattr(trainer._Trainer, "train_epoch", train_epoch)
    spy = Spy(monkeypatch)
    resumed, _ = study(tiny_run, "betas=[4]", fresh=True, ctx=ctx)
    assert spy.calls == [("beta-4", True)]
    expected = {k: v for k, v in result.rows[-1].items() if k != "train_seconds"}
    assert {k: v for k, v in resumed.rows[0].items() if k != "train_seconds"} == pytest.approx(expected, rel=1e-6)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="regularisation.betas"):
        load_settings("regularisation", overrides=["betas=[-1]"])
    with pytest.raises(ValueError, match="regularisation.ks"):
        load_settings("regularisation", overrides=["ks=[0]"])
