"""The latent-dim study on a tiny trained VAE: one short training per latent size inside the study folder,
models and codes of the right size, reconstruction errors and scores that match a recomputation, a variant
of other settings trained again, finished variants reused, and findings that agree with the table."""

import csv

import pytest

from latentatlas.config import diff
from latentatlas.metrics.scores import reconstruction_errors
from latentatlas.runs.session import as_session
from latentatlas.runs.store import Run
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import load_settings, variants
from tests.studies.conftest import run_on

TINY = {"name": "tiny", "seed": 0, "data": {"name": "mnist", "limit": 600},
        "model": {"family": "vae", "latent_dim": 4, "width": 8},
        "train": {"epochs": 1, "batch_size": 64, "progress": False, "max_minutes": 30.0},
        "sample": {"samplers": ["prior"], "n": 64}, "evaluate": {"metrics": ["frechet"], "n_real": 1000}}
SETTINGS = ["latent_dims=[2, 8]", "epochs=1", "k=2", "n_samples=200", "n_real=200"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, run_maker):
    return run_maker(tmp_path_factory.mktemp("runs"), TINY)


def study(run, *overrides, fresh=False, ctx=None):
    """Run the study (on a new context of ``run``, or on ``ctx`` with its Judge already built)."""
    return run_on("latent-dim", run, SETTINGS, *overrides, fresh=fresh, ctx=ctx)


@pytest.fixture(scope="module")
def first(tiny_run):
    return study(tiny_run)


def trainings(monkeypatch) -> list:
    calls, real = [], variants.train_session

    def train_session(config, *, resume=False):
        calls.append((config.name, resume))
        return real(config, resume=resume)

    monkeypatch.setattr(variants, "train_session", train_session)
    return calls


def test_each_size_is_a_variant_of_the_run_inside_the_study_folder(first, tiny_run):
    result, _ = first
    runs = tiny_run / "studies" / "latent-dim" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["dim-2", "dim-8"]
    parent = Run.open(tiny_run).config_dict()
    for d in (2, 8):
        run = Run.open(runs / f"dim-{d}")
        changed = {key for key, _, _ in diff(parent, run.config_dict())}
        assert changed == {"model.latent_dim", "name", "runs_dir", "parent", "train.max_minutes"}
        assert run.config.model.latent_dim == d and run.config.train.epochs == 1
    for f in ("table.csv", "table.md", "study.json", "summary.md", "latent-dim.png"):
        assert (result.folder / f).is_file(), f


def test_models_and_codes_have_the_latent_size(first):
    result, ctx = first
    for row in result.rows:
        d = row["latent_dim"]
        session = as_session(result.folder / "runs" / f"dim-{d}")
        assert session.model.latent_dim == d and row["code_size"] == d and 0 <= row["active_dims"] <= d
        latents = session.run.load_latents()
        assert latents["z_mean"].shape == (600, d) and latents["z_logvar"].shape == (600, d)
        assert variants.prior_codes(session, 5, ctx.generator("x")).shape == (5, d)


def test_reconstruction_error_and_scores_match_a_recomputation(first):
    result, ctx = first
    row = result.rows[0]
    session = as_session(result.folder / "runs" / "dim-2")
    test = session.data.part("test")
    recon = session.code_map.decode(session.code_map.encode(test.images)[0])
    assert row["recon_mse"] == pytest.approx(reconstruction_errors(test.images, recon)["mse"], rel=1e-5)
    z = variants.prior_codes(session, 200, ctx.generator("latent-dim", 2, "prior"))
    scores = ctx.judge.score(session.code_map.decode(z))     # the parent run's Judge
    assert row["prior_frechet"] == pytest.approx(scores["frechet"])
    assert row["prior_classes_covered"] == scores["classes_covered"] and row["n_classes"] == 10


def test_a_rerun_reuses_finished_variants(first, tiny_run, monkeypatch):
    result, ctx = first
    calls = trainings(monkeypatch)
    best = (result.folder / "runs" / "dim-8" / "checkpoints" / "best.pt").stat().st_mtime_ns
    again, _ = study(tiny_run, fresh=True, ctx=ctx)
    assert calls == [] and again.rows == result.rows
    assert (result.folder / "runs" / "dim-8" / "checkpoints" / "best.pt").stat().st_mtime_ns == best


def test_findings_agree_with_the_table(first):
    result, _ = first
    with open(result.folder / "table.csv") as fh:
        table = {int(r["latent size"]): r for r in csv.DictReader(line for line in fh if not line.startswith("#"))}
    rows = sorted(result.rows, key=lambda r: r["latent_dim"])
    assert sorted(table) == [r["latent_dim"] for r in rows]
    best = min(rows, key=lambda r: r["gmm_frechet"])
    near = [r["latent_dim"] for r in rows if r["gmm_frechet"] <= 1.1 * best["gmm_frechet"]]
    assert [d for d, r in table.items() if r["near best FD"] == "yes"] == near
    assert f"from size {best['latent_dim']} " in result.findings[0]
    assert f"within 10% of it is {near[0]} " in result.findings[0]
    mse = next(f for f in result.findings if f.startswith("Reconstruction MSE"))
    shown = {d: fmt_number(float(table[d]["recon MSE"])) for d in (2, 8)}
    assert f"size=2: {shown[2]} -> size=8: {shown[8]}" in mse
    assert "ρ" not in mse            # two sizes: too few for a rank correlation
    prior_better = [r["latent_dim"] for r in rows if r["prior_frechet"] <= r["gmm_frechet"]]
    assert ("at every size" in result.findings[-1]) == (not prior_better)


def test_a_variant_of_other_settings_is_trained_again(first, tiny_run, monkeypatch):
    calls = trainings(monkeypatch)
    result, _ = study(tiny_run, "latent_dims=[2]", "epochs=2", ctx=first[1])
    assert calls == [("dim-2", False)]
    assert Run.open(result.folder / "runs" / "dim-2").read_metrics()["train"]["epochs_run"] == 2


def test_settings_are_checked():
    with pytest.raises(ValueError, match="latent-dim.latent_dims"):
        load_settings("latent-dim", overrides=["latent_dims=[0]"])
    with pytest.raises(ValueError, match="latent-dim.covariance"):
        load_settings("latent-dim", overrides=["covariance=round"])
