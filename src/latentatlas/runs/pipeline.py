"""The one data flow: train -> encode -> fit samplers -> sample -> evaluate -> report.

Each stage reads the files of the stages before it from the run folder and writes its own, so any
stage can be rerun alone; a failing stage leaves the earlier stages' files untouched.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from latentatlas.config import RunConfig
from latentatlas.data.base import SPLITS, ImageDataset, to_float, to_uint8_nhwc
from latentatlas.rng import derive_seed, make_generator, seed_everything
from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.store import Run, default_run_name

log = logging.getLogger(__name__)


def load_run_data(config: RunConfig) -> ImageDataset:
    """The run's dataset with its deterministic split."""
    from latentatlas.data import load_dataset

    return load_dataset(config.data, seed=config.seed)


def device_for(config: RunConfig) -> torch.device:
    from latentatlas.training.trainer import resolve_device

    return resolve_device(config.train.device)


def load_model(run: Run, device: torch.device | str = "cpu") -> torch.nn.Module:
    from latentatlas.training.checkpoint import load_model as load_checkpoint_model

    path = run.checkpoint_path("best")
    if not path.is_file():
        path = run.checkpoint_path("last")
    if not path.is_file():
        raise FileNotFoundError(f"{run.path}: no checkpoint yet; run `latentatlas train` first")
    return load_checkpoint_model(path, map_location=device).eval()


# -- train ----------------------------------------------------------------------------------------
def train_stage(config: RunConfig, *, resume: bool = False, run: Run | None = None) -> Run:
    """Create (or, with ``resume``, reopen) the run folder and train the model."""
    from latentatlas.models import build_model
    from latentatlas.training.trainer import train

    seed_everything(config.seed)
    if run is None and not is_main_process():
        # a torchrun worker: rank 0 owns the run folder; the trainer writes nothing on other ranks
        run = Run(Path(config.runs_dir) / (config.name or default_run_name(config)))
    if run is None:
        if resume:
            if not config.name:
                raise ValueError("resume: needs the run's name (config `name` or --set name=...)")
            run = Run.open(Path(config.runs_dir) / config.name)
            _update_config(run, config)
        else:
            run = Run.create(config)
    data = load_run_data(config)
    model = build_model(config.model, data.image_shape)
    result = train(model, data, config.train, run.path, seed=config.seed, resume=resume,
                   callbacks=_training_callbacks(config, data))
    if not is_main_process():
        return run
    run.update_metrics("train", {
        "epochs_run": result.epochs_run, "steps": result.steps, "best_val_loss": result.best_val_loss,
        "stopped_early": result.stopped_early, "reason": result.reason, "device": str(result.device),
        "seconds_per_epoch": _seconds_per_epoch(result.history),
    })
    return run


def _update_config(run: Run, config: RunConfig) -> None:
    """On resume, record the config training continues with (the later stages read it)."""
    from latentatlas import config as config_mod

    changes = config_mod.diff(run.config_dict(), config_mod.to_dict(config))
    if changes:
        log.info("resume with a changed config: %s", ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes))
        config_mod.save(config, run.config_path)


def is_main_process() -> bool:
    """False on the workers (RANK > 0) of a run launched with torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def _training_callbacks(config: RunConfig, data: ImageDataset) -> list:
    """The optional Fréchet monitor: prior draws decoded every ``train.monitor_every`` epochs, scored
    against the validation split, logged in metrics.jsonl, stopping after ``monitor_patience``."""
    if not config.train.monitor_every or not is_main_process():
        return []
    from latentatlas.metrics.monitor import FrechetMonitor

    return [FrechetMonitor(data.part("val"), every=config.train.monitor_every, n=config.train.monitor_n,
                           seed=config.seed, patience=config.train.monitor_patience,
                           extractor=config.evaluate.extractor, train=data.part("train"),
                           device=str(device_for(config)))]


def _seconds_per_epoch(history: list[dict]) -> float | None:
    secs = [h["seconds"] for h in history if "seconds" in h]
    return float(np.mean(secs)) if secs else None


# -- encode ---------------------------------------------------------------------------------------
def encode_stage(run: Run, *, device: torch.device | str | None = None) -> Path:
    """Encode every image of the dataset; write latents.npz, reconstruction metrics and a figure."""
    from latentatlas.latent.encode import decode_codes, encode_images
    from latentatlas.metrics.scores import reconstruction_errors

    config = run.config
    device = device or device_for(config)
    model = load_model(run, device)
    data = load_run_data(config)
    mean, logvar = encode_images(model, data.images, device=device)
    arrays: dict[str, np.ndarray] = {"z_mean": mean.numpy(), "split": data.split.numpy()}
    if logvar is not None:
        arrays["z_logvar"] = logvar.numpy()
    if data.labels is not None:
        arrays["labels"] = data.labels.numpy()
    if data.attributes is not None:
        arrays["attributes"] = data.attributes.numpy()
        arrays["attribute_names"] = np.array(data.attribute_names)
    path = run.save_latents(**arrays)

    test = data.part(config.evaluate.split)
    recon = decode_codes(model, mean[data.split == SPLITS.index(config.evaluate.split)], device=device)
    run.update_metrics("reconstruction", reconstruction_errors(to_float(test.images), recon))
    show = torch.randperm(len(test), generator=make_generator(derive_seed(config.seed, "show")))[:16]
    pairs = torch.stack([to_float(test.images[show]), recon[show]], dim=1).flatten(0, 1)
    save_image_grid(run.figure_path("reconstructions.png"), pairs, nrow=8)
    return path


def training_codes(run: Run, which: str = "mean", split: str = "train", *, seed: int = 0) -> torch.Tensor:
    """Codes of one split from latents.npz: posterior means, or one posterior draw per image."""
    latents = run.load_latents()
    rows = latents["split"] == SPLITS.index(split)
    z = torch.from_numpy(latents["z_mean"][rows])
    if which == "sample" and "z_logvar" in latents:
        std = torch.from_numpy(latents["z_logvar"][rows]).mul(0.5).exp()
        z = z + std * torch.randn(z.shape, generator=make_generator(seed))
    elif which not in ("mean", "sample"):
        raise ValueError(f"sample.codes: expected 'mean' or 'sample', got {which!r}")
    return z


# -- fit samplers and sample ----------------------------------------------------------------------
def sample_stage(run: Run, specs: Sequence[str] | None = None, *, n: int | None = None,
                 device: torch.device | str | None = None) -> list[Path]:
    """Fit each sampler on the training codes, save it, draw ``n`` codes, decode, save samples + grid."""
    from latentatlas.latent.encode import decode_codes
    from latentatlas.latent.samplers import build_sampler

    config = run.config
    specs = list(specs or config.sample.samplers)
    n = int(n or config.sample.n)
    if n <= 0:
        raise ValueError(f"n: expected a positive number of samples, got {n}")
    samplers = {spec: build_sampler(spec) for spec in specs}   # bad specs fail before any work
    device = device or device_for(config)
    model = load_model(run, device)
    z_train = training_codes(run, config.sample.codes, seed=derive_seed(config.seed, "codes"))
    z_test = training_codes(run, "mean", config.evaluate.split)
    paths = []
    for spec, sampler in samplers.items():
        started = time.perf_counter()
        sampler.fit(z_train, generator=make_generator(derive_seed(config.seed, "fit", spec)))
        fit_seconds = time.perf_counter() - started
        sampler.save(run.sampler_path(spec))
        z = sampler.sample(n, generator=make_generator(derive_seed(config.seed, "sample", spec)))
        images = decode_codes(model, z, device=device)
        paths.append(run.save_samples(spec, to_uint8_nhwc(images)))
        save_image_grid(run.figure_path(f"samples_{run.samples_path(spec).stem}.png"), images[:64], nrow=8)
        summary = {**sampler.describe(), "spec": spec, "fit_seconds": round(fit_seconds, 3), "n": n}
        try:
            summary["test_log_likelihood"] = float(sampler.score_samples(z_test).mean())
        except NotImplementedError:
            pass
        run.update_metrics("samplers", {run.samples_path(spec).stem: summary})
        _sampler_figures(run, spec, sampler, summary.get("selection"), model, device)
    return paths


def _sampler_figures(run: Run, spec: str, sampler, curve: list[dict] | None, model, device) -> None:
    """GMM extras: the model-selection curve and one grid per component, sorted by variance."""
    from latentatlas.latent.encode import decode_codes

    stem = run.samples_path(spec).stem
    if curve:
        series = {c: [(row["k"], row[c]) for row in curve if row.get(c) is not None]
                  for c in ("bic", "aic") if any(row.get(c) is not None for row in curve)}
        if series:
            save_line_plot(run.figure_path(f"selection_{stem}.png"), series, xlabel="components k",
                           ylabel="criterion (lower is better)", title=f"{spec}: model selection")
        heldout = [(row["k"], row["heldout_ll"]) for row in curve if row.get("heldout_ll") is not None]
        if heldout:
            save_line_plot(run.figure_path(f"selection_heldout_{stem}.png"), {"held-out": heldout},
                           xlabel="components k", ylabel="held-out log-likelihood per code")
    if not hasattr(sampler, "component_variances"):
        return
    k = int(sampler.weights_.shape[0])
    order = torch.argsort(torch.as_tensor(sampler.component_variances()).float()).tolist()[:12]
    g = make_generator(derive_seed(run.config.seed, "components", spec))
    rows = [decode_codes(model, sampler.sample(8, generator=g, component=int(j)), device=device) for j in order]
    save_image_grid(run.figure_path(f"components_{stem}.png"), torch.cat(rows), nrow=8)
    run.update_metrics("figures", {f"components_{stem}.png": (
        f"{spec}: one row per component ({len(order)} of {k}), sorted by mean variance; weights "
        + ", ".join(f"{float(sampler.weights_[j]):.3f}" for j in order))})


# -- evaluate -------------------------------------------------------------------------------------
def evaluate_stage(run: Run, *, extractor: str | None = None, device: torch.device | str | None = None) -> dict:
    """Score every samples file of the run against the real evaluation split."""
    from latentatlas.metrics.evaluate import evaluate_samples, load_samples

    config = run.config
    extractor = extractor or config.evaluate.extractor
    device = device or device_for(config)
    data = load_run_data(config)
    real = data.part(config.evaluate.split)
    n_real = min(config.evaluate.n_real, len(real))
    if n_real < config.evaluate.n_real:
        log.warning("evaluate.n_real=%d but the %s split has %d images: using all of them",
                    config.evaluate.n_real, config.evaluate.split, len(real))
    names = run.sample_names()
    if not names:
        raise FileNotFoundError(f"{run.path}: no samples yet; run `latentatlas sample {run.path}` first")
    results = {}
    for name in names:
        fake = load_samples(run.samples_dir / f"{name}.npz")
        results[name] = evaluate_samples(fake, real, metrics=tuple(config.evaluate.metrics), extractor=extractor,
                                         train=data.part("train"), seed=config.seed, device=str(device),
                                         real_split=config.evaluate.split, n_real=n_real)
        run.update_metrics("evaluate", {name: results[name]})
    return results


# -- everything -----------------------------------------------------------------------------------
def run_all(config: RunConfig, *, resume: bool = False) -> Run:
    """train -> encode -> sample -> evaluate -> report; returns the run."""
    from latentatlas.runs.report import write_report

    run = train_stage(config, resume=resume)
    if not is_main_process():
        return run   # the later stages run once, on rank 0
    encode_stage(run)
    sample_stage(run)
    evaluate_stage(run)
    write_report(run)
    return run
