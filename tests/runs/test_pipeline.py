"""The whole chain at a tiny size, through the CLI as a user runs it."""

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from latentatlas.cli import demo_config, main
from latentatlas.runs import pipeline
from latentatlas.runs.store import Run
from latentatlas.training.precision import resolve_precision

TINY = {
    "name": "tiny",
    "seed": 0,
    "data": {"name": "mnist", "limit": 400},
    "model": {"family": "vae", "latent_dim": 4, "width": 8},
    "train": {"epochs": 2, "batch_size": 64, "progress": False},
    "sample": {"samplers": ["prior", "gmm:k=2,covariance=full"], "n": 64},
    "evaluate": {"metrics": ["frechet"], "n_real": 1000},   # more than the 40 test images: all are used
}


def _run_through_the_cli(tmp_path_factory, config: dict) -> Run:
    """`latentatlas run` on ``config`` in a fresh runs folder; the run it made."""
    runs_dir = tmp_path_factory.mktemp("runs")
    path = runs_dir / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump({**config, "runs_dir": str(runs_dir)}))
    assert main(["run", str(path)]) == 0
    return Run.open(runs_dir / config["name"])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _run_through_the_cli(tmp_path_factory, TINY)


def test_run_folder_has_every_stage_file(tiny_run):
    run = tiny_run
    for rel in ("config.yaml", "env.json", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.jsonl",
                "latents.npz", "samples/prior.npz", "samples/gmm_k-2_covariance-full.npz", "metrics.json",
                "report.html", "figures/reconstructions.png", "figures/samples_prior.png"):
        assert (run.path / rel).is_file(), rel


def test_latents_cover_every_image_with_labels_and_split(tiny_run):
    latents = tiny_run.load_latents()
    assert latents["z_mean"].shape == (400, 4) and latents["z_logvar"].shape == (400, 4)
    assert np.isfinite(latents["z_mean"]).all()
    assert latents["labels"].shape == (400,) and set(np.unique(latents["split"])) == {0, 1, 2}


def test_samples_are_uint8_nhwc(tiny_run):
    with np.load(tiny_run.samples_dir / "prior.npz") as f:
        arr = f["arr_0"]
    assert arr.dtype == np.uint8 and arr.shape == (64, 28, 28, 1) and arr.max() > 0


def test_metrics_and_report(tiny_run):
    metrics = tiny_run.read_metrics()
    ran_in = resolve_precision("auto", torch.device("cpu"))                # the default, as resolved here
    assert metrics["train"]["epochs_run"] == 2 and metrics["train"]["precision"] == ran_in   # what it ran in
    assert 0 < metrics["reconstruction"]["mse"] < 0.5
    for name in ("prior", "gmm_k-2_covariance-full"):
        fd = metrics["evaluate"][name]["frechet"]
        assert np.isfinite(fd) and fd > 0
    gmm = metrics["samplers"]["gmm_k-2_covariance-full"]   # keyed like the samples file and evaluate
    assert gmm["spec"] == "gmm:k=2,covariance=full" and "test_log_likelihood" in gmm
    html = tiny_run.report_path.read_text()
    for needle in ("What was run", "Latent samplers", "gmm:k=2,covariance=full", "Sample quality",
                   "figures/samples_prior.png", "figures/training_curves.png"):
        assert needle in html, needle
    for src in __import__("re").findall(r"src='(figures/[^']+)'", html):
        assert (tiny_run.path / src).is_file(), src


def test_gmm_component_figure_names_its_components_and_their_codes(tiny_run):
    from PIL import Image

    from latentatlas.latent.samplers import GMM

    stem = "gmm_k-2_covariance-full"
    gmm = GMM.load(tiny_run.sampler_path("gmm:k=2,covariance=full"))
    counts = gmm.component_counts()
    assert float(counts.sum()) == pytest.approx(320, abs=1e-6)   # the 320 training codes of 400 images
    order = sorted(range(2), key=lambda j: -float(counts[j]))
    caption = tiny_run.read_metrics()["figures"][f"components_{stem}.png"]
    assert caption.endswith(", ".join(f"component {j} (n_k {float(counts[j]):.1f})" for j in order))
    assert "each of the 2 components" in caption
    with Image.open(tiny_run.figure_path(f"components_{stem}.png")) as grid:   # one row of 8 per component
        assert grid.size[0] / grid.size[1] == pytest.approx(8 / 2, rel=0.05)


def test_a_failing_stage_keeps_earlier_files(tiny_run):
    before = {p: p.stat().st_mtime_ns for p in (tiny_run.latents_path, tiny_run.checkpoint_path("best"))}
    with pytest.raises(ValueError, match="unknown sampler 'nonsense'"):
        pipeline.sample_stage(tiny_run, ["nonsense"], n=8)
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_child_run_report_shows_the_difference(tiny_run, tmp_path):
    cfg = {**TINY, "runs_dir": str(tiny_run.path.parent), "name": "child", "parent": "tiny",
           "model": {**TINY["model"], "kl_weight": 2.0}, "train": {**TINY["train"], "epochs": 1}}
    path = tmp_path / "child.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    child = Run.open(tiny_run.path.parent / "child")
    assert main(["report", str(child.path)]) == 0
    html = child.report_path.read_text()
    assert "How it differs from its parent" in html and "model.kl_weight" in html


def test_resume_continues_training_and_records_the_new_config(tmp_path):
    cfg = {**TINY, "runs_dir": str(tmp_path), "name": "r", "train": {**TINY["train"], "epochs": 1}}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    assert main(["train", str(path), "--resume", "--set", "train.epochs=2"]) == 0
    run = Run.open(tmp_path / "r")
    assert [h["epoch"] for h in run.history()] == [1, 2]
    assert run.config.train.epochs == 2 and run.read_metrics()["train"]["epochs_run"] == 2


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"latnt_dim": 3}}))
    assert main(["train", str(path)]) == 2
    assert "unknown key(s) ['latnt_dim']" in capsys.readouterr().err
    assert main(["encode", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_evaluate_json_on_a_samples_file(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run.samples_dir / "prior.npz"), "--ref", "mnist:test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frechet"] > 0 and result["protocol"]["n_fake"] == 64


def test_demo_config_is_the_packaged_one():
    cfg = demo_config("somewhere", ["train.epochs=1"])
    assert cfg.runs_dir == "somewhere" and cfg.train.epochs == 1 and cfg.data.name == "mnist"


TINY_GAN = {
    "name": "gan", "seed": 0,
    "data": {"name": "mnist", "limit": 400},
    "model": {"family": "dcgan", "latent_dim": 6, "width": 8, "ema_decay": 0.9},
    "train": {"epochs": 2, "batch_size": 64, "progress": False, "monitor_n": 100},
    "codes": {"encoder_steps": 30, "refine_steps": 3, "batch_size": 128},
    "sample": {"samplers": ["prior", "gmm:k=2,covariance=diag"], "n": 64},
    "evaluate": {"metrics": ["frechet", "classes"], "n_real": 1000},
}


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    return _run_through_the_cli(tmp_path_factory, TINY_GAN)


def test_a_gan_run_goes_through_every_stage_by_inversion(gan_run):
    run = gan_run
    history = run.history()
    assert all("monitor_frechet" in h and "monitor_classes_covered" in h for h in history)   # monitor on by default
    metrics = run.read_metrics()
    assert metrics["train"]["selection_metric"] == "monitor_frechet"
    assert metrics["train"]["best_score"] == min(h["monitor_frechet"] for h in history)
    latents = run.load_latents()
    assert str(latents["codes_method"]) == "inversion" and "z_logvar" not in latents
    assert latents["z_mean"].shape == (400, 6) and np.isfinite(latents["z_mean"]).all()
    assert (run.path / "checkpoints" / "inverter.pt").is_file()
    assert metrics["codes"]["method"] == "inversion" and metrics["codes"]["refine_steps"] == 3
    assert 0 < metrics["reconstruction"]["mse"] < 0.5                 # of inverted test images
    for name in ("prior", "gmm_k-2_covariance-diag"):
        result = metrics["evaluate"][name]
        assert np.isfinite(result["frechet"]) and 1 <= result["classes_covered"] <= 10
    html = run.report_path.read_text()
    assert "inversion" in html and "figures/training_health.png" in html


def test_encode_alone_finds_the_codes_the_run_found(gan_run, tmp_path):
    """Same seed, same codes, whichever command ran the stage: `latentatlas encode` alone gave other codes on
    every call (the inversion encoder started from torch's unseeded global generator)."""
    copy = Run.open(shutil.copytree(gan_run.path, tmp_path / "gan"))
    torch.manual_seed(12345)                                    # whatever state the global generator is in
    pipeline.encode_stage(copy)
    np.testing.assert_array_equal(copy.load_latents()["z_mean"], gan_run.load_latents()["z_mean"])


def test_latent_analyses_run_on_a_gan(gan_run):
    from latentatlas.runs import analyses

    out = analyses.interpolate_stage(gan_run, n_pairs=4, steps=3, n_frechet=20, geodesic_pairs=2, geodesic_iters=2,
                                     learned_iters=0, extractor="pixels")
    assert np.isfinite(out["lerp"]["midpoint_fd"]) and np.isfinite(out["slerp"]["cycle_error_mean"])
    geometry = analyses.geometry_stage(gan_run, map_methods=("pca",), drift_iters=1)
    assert geometry["latent_dim"] == 6


def test_a_conditional_gan_is_inverted_and_sampled_with_labels(tmp_path_factory):
    config = {**TINY_GAN, "name": "cgan", "data": {"name": "mnist", "limit": 200},
              "model": {"family": "cgan", "architecture": "mlp", "latent_dim": 4, "width": 32},
              "train": {**TINY_GAN["train"], "epochs": 1}, "sample": {"samplers": ["prior"], "n": 50},
              "evaluate": {"metrics": ["frechet"], "n_real": 1000}}
    run = _run_through_the_cli(tmp_path_factory, config)
    with np.load(run.samples_dir / "prior.npz") as f:
        labels, images = f["labels"], f["arr_0"]
    assert images.shape == (50, 28, 28, 1) and labels.shape == (50,) and set(labels) <= set(range(10))
    assert len(set(labels)) > 3                      # drawn from the training labels, not one class
    assert str(run.load_latents()["codes_method"]) == "inversion"
    with pytest.raises(ValueError, match="the latent analyses decode codes without labels"):
        from latentatlas.runs import analyses

        analyses.geometry_stage(run, map_methods=("pca",))


def test_a_vqvae_run_stores_code_grids_and_samples_them(tmp_path_factory):
    config = {**TINY, "name": "vq", "model": {"family": "vqvae", "latent_dim": 4, "width": 8, "codebook_size": 32},
              "train": {**TINY["train"], "epochs": 1},
              "sample": {"samplers": ["categorical", "pixelcnn:iters=30,dim=8,layers=2"], "n": 32}}
    run = _run_through_the_cli(tmp_path_factory, config)
    latents = run.load_latents()
    assert latents["codes"].shape == (400, 7, 7) and latents["codebook"].shape == (32, 4) and "z_mean" not in latents
    assert run.history()[0]["codebook_usage"] > 0 and (run.figures_dir / "codebook_usage.png").is_file()
    metrics = run.read_metrics()
    for stem in ("categorical", "pixelcnn_iters-30_dim-8_layers-2"):
        assert metrics["samplers"][stem]["test_log_likelihood"] < 0
        assert np.isfinite(metrics["evaluate"][stem]["frechet"])
    with pytest.raises(ValueError, match="'gmm' samples continuous codes, but a 'vqvae' model has discrete codes"):
        pipeline.sample_stage(run, ["gmm"], n=8)


def test_discrete_interpolation_on_a_vqvae_run(tmp_path_factory):
    config = {**TINY, "name": "vq2", "model": {"family": "vqvae", "latent_dim": 4, "width": 8, "codebook_size": 32},
              "train": {**TINY["train"], "epochs": 1}, "sample": {"samplers": ["categorical"], "n": 16}}
    run = _run_through_the_cli(tmp_path_factory, config)
    assert main(["interpolate", str(run.path), "--pairs", "4", "--steps", "5"]) == 0
    out = run.read_metrics()["interpolation"]
    assert out["cell_changes_per_path"] >= out["cells_differing_at_ends"] * 49 and np.isfinite(out["midpoint_fd"])
    assert (run.figures_dir / "interp_strips.png").is_file()
