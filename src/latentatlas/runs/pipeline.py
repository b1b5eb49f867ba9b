"""The one data flow: train -> codes (encode or invert) -> fit samplers -> sample -> evaluate -> report.

Each stage reads the files of the stages before it from the run folder and writes its own, so any
stage can be rerun alone; a failing stage leaves the earlier stages' files untouched.  A stage takes a
:class:`Run` or a :class:`~latentatlas.runs.session.Session`; :func:`run_all` passes one session along so
the model and the dataset are loaded once.  The sample stage lives in :mod:`latentatlas.runs.sampling`.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from latentatlas.config import RunConfig
from latentatlas.data.base import SPLITS, ImageDataset, to_float
from latentatlas.rng import derive_seed, make_generator, seed_everything
from latentatlas.runs import tracking
from latentatlas.runs.figures import save_crop_figure, save_image_grid
from latentatlas.runs.results import sampler_specs
from latentatlas.runs.sampling import sample_stage, sampler_for, training_codes
from latentatlas.runs.session import Session, as_session, device_for, load_model, load_run_data, model_checkpoint
from latentatlas.runs.store import Run, default_run_name
from latentatlas.validate import check_finite

__all__ = ["Session", "train_stage", "encode_stage", "sample_stage", "evaluate_stage", "run_all", "training_codes",
           "load_model", "load_run_data", "device_for", "is_main_process"]

log = logging.getLogger(__name__)


# -- train ----------------------------------------------------------------------------------------
def train_stage(config: RunConfig, *, resume: bool = False) -> Run:
    """Create (or, with ``resume``, reopen) the run folder and train the model.  The folder is made only
    once the dataset and the model are ready; on resume, config.yaml is rewritten only after training
    succeeded; a folder whose first attempt wrote no checkpoint is started again (with or without resume)."""
    return train_session(config, resume=resume).run


def check_stages(config: RunConfig) -> None:
    """Fail before any work (and before a run folder is made) on what the stages would reject: a dataset name, a
    device this machine lacks, sampler specs, metrics, extractor, and a tracker that is not installed."""
    from latentatlas.data import DATASETS
    from latentatlas.metrics.evaluate import METRICS
    from latentatlas.metrics.features import EXTRACTORS

    if config.data.name not in DATASETS:
        raise ValueError(f"data.name: expected one of {', '.join(DATASETS.names())}, got {config.data.name!r}")
    device_for(config)
    tracking.check_available(config.track)
    for spec in config.sample.samplers:
        sampler_for(spec, config.model.family)
    for name in config.evaluate.metrics:
        if name not in METRICS:
            raise ValueError(f"evaluate.metrics: expected names from {METRICS.names()}, got {name!r}")
    if config.evaluate.extractor not in EXTRACTORS:
        raise ValueError(f"evaluate.extractor: expected one of {EXTRACTORS.names()}, got {config.evaluate.extractor!r}")


def train_session(config: RunConfig, *, resume: bool = False) -> Session:
    """:func:`train_stage`, returning a session that holds the trained model (best weights) and the data."""
    from latentatlas.models import build_model
    from latentatlas.training.trainer import train

    check_stages(config)
    seed_everything(config.seed)
    if resume and not config.name:
        raise ValueError("resume: needs the run's name (config `name` or --set name=...)")
    run = Run.open(Path(config.runs_dir) / config.name) if resume and is_main_process() else None
    if resume and run is not None and not run.checkpoint_path("last").is_file():
        log.info("resume: %s has no checkpoint yet (its first attempt stopped early); starting it again", run.path)
        run, resume = None, False
    if resume and run is not None:
        check_same_split(run.config, config)
    data = load_run_data(config)
    check_scored_split(config, data)
    model = build_model(config.model, data.image_shape, data.n_classes)
    if not is_main_process():
        # a torchrun worker: rank 0 owns the run folder; the trainer writes nothing on other ranks
        run = Run(Path(config.runs_dir) / (config.name or default_run_name(config)))
    elif run is None:
        run = Run.create(config)
    _data_figure(run, config, data)
    result = train(model, data, config.train, run.path, seed=config.seed, resume=resume,
                   callbacks=_training_callbacks(config, data, model))
    if not is_main_process():
        return Session(run, device=result.device, data=data, model=model)
    if resume:
        _update_config(run, config)
    session = Session(run, device=result.device, data=data, model=model)
    run.update_metrics("train", {
        "epochs_run": result.epochs_run, "steps": result.steps, "selection_metric": result.selection_metric,
        "best_score": result.best_score, "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
        "reason": result.reason, "device": str(result.device), "precision": result.precision,
        "seconds_per_epoch": _seconds_per_epoch(result.history), "train_seconds": round(result.train_seconds, 2)})
    tracking.sync(run)
    return session


def _data_figure(run: Run, config: RunConfig, data: ImageDataset) -> None:
    """For CelebA, ``figures/data_crop.png``: a few source faces with the crop box and what training sees."""
    if config.data.name != "celeba" or run.figure_path("data_crop.png").is_file():
        return
    from latentatlas.data.celeba import crop_preview

    originals, boxes = crop_preview(config.data, n=4)
    kept = data.images[:len(originals)].permute(0, 2, 3, 1).numpy()
    save_crop_figure(run.figure_path("data_crop.png"), originals, boxes, kept,
                     title=f"data.options.crop={dict(config.data.options or {}).get('crop', 'center')!r}, "
                           f"resized to {kept.shape[2]}x{kept.shape[1]} (antialiased)")


SPLIT_SETTINGS = ("name", "limit", "val_fraction", "test_fraction")


def check_scored_split(config: RunConfig, data: ImageDataset) -> None:
    """Fail before training when ``evaluate.split`` holds too few images to score the samples against."""
    split = config.evaluate.split
    n = int((data.split == SPLITS.index(split)).sum())
    if n < 2:
        raise ValueError(f"evaluate.split: the {split!r} split of {data.name} holds {n} of its {len(data)} images "
                         f"(data.limit={config.data.limit}, data.val_fraction={config.data.val_fraction}, "
                         f"data.test_fraction={config.data.test_fraction}); the scores need at least 2")


def check_same_split(saved: RunConfig, config: RunConfig) -> None:
    """Refuse a resume whose settings would draw another train / val / test split than the run's (images
    it validated or will be tested on would move into training).  A changed ``seed`` alone is refused by
    the checkpoint's own check."""
    changes = [(f"data.{k}", getattr(saved.data, k), getattr(config.data, k)) for k in SPLIT_SETTINGS
               if getattr(saved.data, k) != getattr(config.data, k)]
    if (saved.data.split_seed, config.data.split_seed) != (None, None) and saved.data_seed != config.data_seed:
        changes.append(("data seed (data.split_seed, else seed)", saved.data_seed, config.data_seed))
    if changes:
        raise ValueError("resume: the data split cannot change on resume (" + ", ".join(
            f"{k}: {a!r} -> {b!r}" for k, a, b in changes) + "); keep the run's data settings, or start a new "
            "run under another name")


def _update_config(run: Run, config: RunConfig) -> None:
    """After a resumed training succeeded, record the config it ran with (the later stages read it)."""
    from latentatlas import config as config_mod

    changes = config_mod.diff(run.config_dict(), config_mod.to_dict(config))
    if changes:
        log.info("resume with a changed config: %s", ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes))
        config_mod.save(config, run.config_path)


def is_main_process() -> bool:
    """False on the workers (RANK > 0) of a run launched with torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def _training_callbacks(config: RunConfig, data: ImageDataset, model) -> list:
    """The sample-quality monitor (Fréchet distance, precision/recall, class coverage and collapse warnings
    of decoded prior draws against the validation split, every ``train.monitor_every`` epochs; by default
    every epoch for models whose best.pt it selects (GANs) and off otherwise)."""
    every = config.train.monitor_every
    if every is None and model.selection_metric.startswith("monitor_"):
        every = 1
    if not every or not is_main_process():
        return []
    from latentatlas.metrics.monitor import SampleMonitor

    return [SampleMonitor(data.part("val"), every=every, n=config.train.monitor_n, seed=config.data_seed,
                          patience=config.train.monitor_patience, extractor=config.evaluate.extractor,
                          train=data.part("train"), device=str(device_for(config)))]


def _seconds_per_epoch(history: list[dict]) -> float | None:
    secs = [h["seconds"] for h in history if "seconds" in h]
    return float(np.mean(secs)) if secs else None


# -- codes ----------------------------------------------------------------------------------------
def encode_stage(target: Run | Session, *, device: torch.device | str | None = None) -> Path:
    """Codes for every image of the dataset (the encoder, or inversion for models without one, see
    ``codes.method``); write latents.npz, reconstruction errors of the evaluation split and a figure."""
    from latentatlas.metrics.scores import reconstruction_errors

    session = as_session(target, device=device)
    run, config, data = session.run, session.config, session.data
    unfinished = run.unfinished_training()
    if unfinished:
        log.warning("%s: %s", run.path, unfinished)
    code_map = _fit_code_map(session)
    mean, logvar = code_map.encode(data.images, data.labels)
    source = model_checkpoint(run) if code_map.method != "inversion" else run.inverter_path
    check_finite(f"codes: the codes made with {str(source)!r}", {"mean": mean, "logvar": logvar})
    arrays: dict[str, np.ndarray] = {"split": data.split.numpy(), "codes_method": np.array(code_map.method)}
    if mean.is_floating_point():
        arrays["z_mean"] = mean.numpy()
    else:   # discrete codes: the index grids (N, h, w) and the codebook they index
        arrays["codes"] = mean.to(torch.int32).numpy()
        arrays["codebook"] = session.model.quantizer.codebook.detach().cpu().numpy()
    if logvar is not None:
        arrays["z_logvar"] = logvar.numpy()
    if data.labels is not None:
        arrays["labels"] = data.labels.numpy()
    if data.attributes is not None:
        arrays["attributes"] = data.attributes.numpy()
        arrays["attribute_names"] = np.array(data.attribute_names)
    path = run.save_latents(**arrays)

    rows = data.split == SPLITS.index(config.evaluate.split)
    test = data.part(config.evaluate.split)
    recon = code_map.decode(mean[rows], None if data.labels is None else data.labels[rows])
    run.update_metrics("reconstruction", reconstruction_errors(to_float(test.images), recon))
    run.update_metrics("codes", {"method": code_map.method, **code_map.details})
    show = torch.randperm(len(test), generator=make_generator(derive_seed(config.seed, "show")))[:16]
    pairs = torch.stack([to_float(test.images[show]), recon[show]], dim=1).flatten(0, 1)
    save_image_grid(run.figure_path("reconstructions.png"), pairs, nrow=8)
    return path


def _fit_code_map(session: Session):
    """The session's code map; for inversion, an inverter fitted now on the training split and saved."""
    from latentatlas.latent.codes import CodeMap, resolve_method
    from latentatlas.latent.inversion import Inverter

    model, c = session.model, session.config.codes
    if resolve_method(model, c.method) == "inversion":
        train = session.data.part("train")
        started = time.perf_counter()
        g = make_generator(derive_seed(session.config.seed, "inversion"))   # its first weights, then its fit
        inverter = Inverter(model, refine_steps=c.refine_steps, lr=c.lr, prior_weight=c.prior_weight,
                            batch_size=c.batch_size, generator=g)
        inverter.fit(model, train.images, train.labels, steps=c.encoder_steps, device=session.device, generator=g)
        inverter.save(session.run.inverter_path)
        details = {**inverter.describe(), "encoder_seconds": round(time.perf_counter() - started, 2)}
        session.set_code_map(CodeMap(model, "inversion", inverter, session.device, details))
    return session.code_map


# -- evaluate -------------------------------------------------------------------------------------
def evaluate_stage(target: Run | Session, *, extractor: str | None = None, samplers: list[str] | None = None,
                   device: torch.device | str | None = None) -> dict:
    """Score every samples file of the run (or those of ``samplers``, specs or file names) against the real
    evaluation split (and, for InfoGAN, how well its categorical code matches the classes)."""
    from latentatlas.metrics.evaluate import evaluate_samples, load_samples

    session = as_session(target, device=device)
    run, config, data = session.run, session.config, session.data
    extractor = extractor or config.evaluate.extractor
    real = data.part(config.evaluate.split)
    n_real = min(config.evaluate.n_real, len(real))
    if n_real < config.evaluate.n_real:
        log.warning("evaluate.n_real=%d but the %s split has %d images: using all of them",
                    config.evaluate.n_real, config.evaluate.split, len(real))
    names = run.sample_names()
    if not names:
        raise FileNotFoundError(f"{run.path}: no samples yet; run `latentatlas sample {run.path}` first")
    if samplers:
        names = _chosen_samples(run, names, samplers)
    results = {}
    for name in names:
        fake = load_samples(run.samples_dir / f"{name}.npz")
        results[name] = evaluate_samples(fake, real, metrics=tuple(config.evaluate.metrics), extractor=extractor,
                                         train=data.part("train"), seed=config.data_seed, device=str(session.device),
                                         real_split=config.evaluate.split, n_real=n_real)
        run.update_metrics("evaluate", {name: results[name]})
    if config.model.family == "infogan" and data.labels is not None:
        results["infogan"] = _infogan_agreement(session)
        run.update_metrics("infogan", results["infogan"])
    tracking.sync(run)
    return results


def _chosen_samples(run: Run, names: list[str], chosen: list[str]) -> list[str]:
    """The samples files (names) of the samplers ``chosen`` by spec (gmm:k=50) or file name (gmm_k-50)."""
    stems = {spec: stem for stem, spec in sampler_specs(run.read_metrics()).items()}
    out = []
    for wanted in chosen:
        stem = stems.get(wanted, wanted)
        if stem not in names:
            raise ValueError(f"samplers: no samples of {wanted!r} in {run.path}; expected one of "
                             f"{', '.join(sorted(set(names) | {k for k, v in stems.items() if v in names}))}")
        out.append(stem)
    return list(dict.fromkeys(out))


def _infogan_agreement(session: Session) -> dict:
    """Error of the best matching of InfoGAN's first categorical code to the dataset classifier's classes."""
    from latentatlas.metrics.features import build_extractor
    from latentatlas.models.infogan import categorical_agreement

    device, config = session.device, session.config
    classifier = build_extractor("classifier", dataset=session.data.part("train"), device=str(device),
                                 seed=config.data_seed)
    out = categorical_agreement(session.model, lambda x: classifier.logits(x.to(device)).argmax(1),
                                generator=make_generator(derive_seed(config.seed, "infogan")))
    return {"categorical_error": out["error"], "mapping": out["mapping"], "n_per_value": 200}


# -- everything -----------------------------------------------------------------------------------
def run_all(config: RunConfig, *, resume: bool = False) -> Run:
    """train -> codes -> sample -> evaluate -> report, sharing the model and the dataset; returns the run."""
    from latentatlas.runs.report import write_report

    session = train_session(config, resume=resume)
    if not is_main_process():
        return session.run   # the later stages run once, on rank 0
    encode_stage(session)
    sample_stage(session)
    evaluate_stage(session)
    write_report(session.run)
    return session.run
