"""The one data flow: train -> codes (encode or invert) -> fit samplers -> sample -> evaluate -> report.

Each stage reads the files of the stages before it from the run folder and writes its own, so any
stage can be rerun alone; a failing stage leaves the earlier stages' files untouched.  A stage takes a
:class:`Run` or a :class:`~latentatlas.runs.session.Session`; :func:`run_all` passes one session along so
the model and the dataset are loaded once.
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
from latentatlas.runs import tracking
from latentatlas.runs.figures import save_crop_figure, save_image_grid, save_line_plot
from latentatlas.runs.session import Session, as_session, device_for, load_model, load_run_data, model_checkpoint
from latentatlas.runs.store import Run, default_run_name
from latentatlas.validate import check_finite, check_number

__all__ = ["Session", "train_stage", "encode_stage", "sample_stage", "evaluate_stage", "run_all", "training_codes",
           "load_model", "load_run_data", "device_for", "is_main_process"]

log = logging.getLogger(__name__)

COMPONENT_ROWS = 12     # rows of a GMM's per-component figure: half most, half least populated components


# -- train ----------------------------------------------------------------------------------------
def train_stage(config: RunConfig, *, resume: bool = False) -> Run:
    """Create (or, with ``resume``, reopen) the run folder and train the model.  The folder is made only
    once the dataset and the model are ready; on resume, config.yaml is rewritten only after training
    succeeded; a folder whose first attempt wrote no checkpoint is started again (with or without resume)."""
    return train_session(config, resume=resume).run


def check_stages(config: RunConfig) -> None:
    """Fail before any work on names the later stages would reject: sampler specs, metrics, extractor, and on a
    tracker that is not installed."""
    from latentatlas.metrics.evaluate import METRICS
    from latentatlas.metrics.features import EXTRACTORS

    tracking.check_available(config.track)
    for spec in config.sample.samplers:
        sampler_for(spec, config.model.family)
    for name in config.evaluate.metrics:
        if name not in METRICS:
            raise ValueError(f"evaluate.metrics: expected names from {METRICS.names()}, got {name!r}")
    if config.evaluate.extractor not in EXTRACTORS:
        raise ValueError(f"evaluate.extractor: expected one of {EXTRACTORS.names()}, got {config.evaluate.extractor!r}")


def sampler_for(spec: str, family: str):
    """The unfitted sampler of ``spec``, checked against the kind of codes the model family makes."""
    from latentatlas.latent.samplers import build_sampler
    from latentatlas.models import MODELS

    sampler = build_sampler(spec)
    code_kind = MODELS.get(family).code_kind
    if sampler.code_kind != code_kind:
        raise ValueError(f"sample.samplers: {spec!r} samples {sampler.code_kind} codes, but a {family!r} model has "
                         f"{code_kind} codes; for code grids use categorical or pixelcnn, for code vectors the others")
    return sampler


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
        inverter = Inverter(model, refine_steps=c.refine_steps, lr=c.lr, prior_weight=c.prior_weight,
                            batch_size=c.batch_size)
        inverter.fit(model, train.images, train.labels, steps=c.encoder_steps, device=session.device,
                     generator=make_generator(derive_seed(session.config.seed, "inversion")))
        inverter.save(session.run.inverter_path)
        details = {**inverter.describe(), "encoder_seconds": round(time.perf_counter() - started, 2)}
        session.set_code_map(CodeMap(model, "inversion", inverter, session.device, details))
    return session.code_map


def training_codes(run: Run, which: str = "mean", split: str = "train", *, seed: int = 0) -> torch.Tensor:
    """Codes of one split from latents.npz: posterior means, or one posterior draw per image; for a model
    with discrete codes, its code grids (n, h, w) long."""
    latents = run.load_latents()
    rows = latents["split"] == SPLITS.index(split)
    if "codes" in latents:
        return torch.from_numpy(latents["codes"][rows]).long()
    z = torch.from_numpy(latents["z_mean"][rows])
    if which == "sample" and "z_logvar" in latents:
        std = torch.from_numpy(latents["z_logvar"][rows]).mul(0.5).exp()
        z = z + std * torch.randn(z.shape, generator=make_generator(seed))
    elif which not in ("mean", "sample"):
        raise ValueError(f"sample.codes: expected 'mean' or 'sample', got {which!r}")
    return z


# -- fit samplers and sample ----------------------------------------------------------------------
def sample_stage(target: Run | Session, specs: Sequence[str] | None = None, *, n: int | None = None,
                 device: torch.device | str | None = None) -> list[Path]:
    """Fit each sampler on the training codes, save it, draw ``n`` codes, decode, save samples + grid.
    A conditional model decodes each code with a label drawn from the training labels' distribution."""
    session = as_session(target, device=device)
    run, config = session.run, session.config
    specs = list(specs or config.sample.samplers)
    n = config.sample.n if n is None else n
    check_number("n", n, low=1, integer=True)
    samplers = {spec: sampler_for(spec, config.model.family) for spec in specs}   # bad specs fail before any work
    z_train = training_codes(run, config.sample.codes, seed=derive_seed(config.seed, "codes"))
    z_test = training_codes(run, "mean", config.evaluate.split)
    paths = []
    for spec, sampler in samplers.items():
        labels = _sample_labels(session, sampler, n, derive_seed(config.seed, "labels", spec))
        z, summary = _fit_and_draw(session, spec, sampler, z_train, z_test, n, labels)
        check_finite(f"sampler {spec!r}: its draws", z)
        images = session.code_map.decode(z, labels)
        stem = run.samples_path(spec).stem
        paths.append(run.save_samples(spec, to_uint8_nhwc(images), labels=labels))
        save_image_grid(run.figure_path(f"samples_{stem}.png"), images[:64], nrow=8)
        run.update_metrics("samplers", {stem: summary})
        _sampler_figures(session, spec, sampler, summary)
    return paths


def _fit_and_draw(session: Session, spec: str, sampler, z_train: torch.Tensor, z_test: torch.Tensor,
                  n: int, labels: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """Fit ``sampler`` on the training codes (a learned one resumably, from samplers/<name>.fit.pt), save it,
    draw n codes (for ``labels`` (n,) when the sampler is class-conditional); the summary for metrics.json.
    ``prior`` on a model whose prior is not N(0, I) (InfoGAN's structured codes, an AAE's mixture) draws
    from the model's own prior."""
    from latentatlas.latent.samplers import LearnedSampler

    run, seed = session.run, session.config.seed
    draw_generator = make_generator(derive_seed(seed, "sample", spec))
    if sampler.name == "prior" and not session.model.normal_prior:
        if sampler.temperature != 1.0:
            raise ValueError(f"sampler {spec!r}: a temperature scales a N(0, I) prior; the "
                             f"{session.config.model.family!r} model's prior is not one")
        z = session.model.prior_sample(n, generator=draw_generator).cpu()
        return z, {"sampler": "prior", "spec": spec, "source": "the model's own prior", "n": n, "dim": z.shape[1]}
    started = time.perf_counter()
    checkpoint = run.samplers_dir / f"{run.samples_path(spec).stem}.fit.pt"
    options = {"checkpoint": checkpoint} if isinstance(sampler, LearnedSampler) else {}
    conditional = getattr(sampler, "conditional", False)
    if conditional:
        options["labels"] = session.data.part("train").labels
    sampler.fit(z_train, generator=make_generator(derive_seed(seed, "fit", spec)), **options)
    fit_seconds = time.perf_counter() - started
    sampler.save(run.sampler_path(spec))
    checkpoint.unlink(missing_ok=True)          # the fit is complete: the saved sampler holds it
    summary = {**sampler.describe(), "spec": spec, "fit_seconds": round(fit_seconds, 3), "n": n}
    try:
        extra = {"labels": session.data.part(session.config.evaluate.split).labels} if conditional else {}
        summary["test_log_likelihood"] = float(sampler.score_samples(z_test, **extra).mean())
    except NotImplementedError:
        pass
    return sampler.sample(n, generator=draw_generator, **({"labels": labels} if conditional else {})), summary


def _sample_labels(session: Session, sampler, n: int, seed: int) -> torch.Tensor | None:
    """Labels (n,) drawn from the training split's label distribution when the model or the sampler is
    class-conditional, else None."""
    if not (getattr(session.model, "conditional", False) or getattr(sampler, "conditional", False)):
        return None
    labels = session.data.part("train").labels
    if labels is None:
        raise ValueError(f"sampler {sampler.spec!r}: a class-conditional sampler needs a labelled dataset")
    labels = labels.long()
    probs = torch.bincount(labels, minlength=session.data.n_classes).double()
    return torch.multinomial(probs / probs.sum(), n, replacement=True, generator=make_generator(seed))


def _sampler_figures(session: Session, spec: str, sampler, summary: dict) -> None:
    """A learned sampler's training curve; GMM extras: the model-selection curve and one row of draws per
    component for the most and least populated components."""
    run = session.run
    stem = run.samples_path(spec).stem
    curve = summary.get("selection")
    if summary.get("training_curve"):
        save_line_plot(run.figure_path(f"fit_{stem}.png"),
                       {"training loss": [(r["iter"], r["loss"]) for r in summary["training_curve"]]},
                       xlabel="iteration", ylabel="loss", title=f"{spec}: fit")
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
    if not hasattr(sampler, "component_counts"):
        return
    from latentatlas.latent.samplers.gmm_diagnostics import extreme_components

    counts = sampler.component_counts()
    order = extreme_components(counts, COMPONENT_ROWS // 2)
    g = make_generator(derive_seed(run.config.seed, "components", spec))
    labels = _sample_labels(session, sampler, 8, derive_seed(run.config.seed, "component-labels", spec))
    rows = [session.code_map.decode(sampler.sample(8, generator=g, component=int(j)), labels) for j in order]
    save_image_grid(run.figure_path(f"components_{stem}.png"), torch.cat(rows), nrow=8)
    which = (f"the {len(order) // 2} most and {len(order) // 2} least populated of {len(counts)} components"
             if len(order) < len(counts) else f"each of the {len(counts)} components")
    run.update_metrics("figures", {f"components_{stem}.png": (
        f"{spec}: 8 draws from {which}, one row each, most populated first (n_k: effective number of training "
        "codes): " + ", ".join(f"component {j} (n_k {float(counts[j]):.1f})" for j in order))})


# -- evaluate -------------------------------------------------------------------------------------
def evaluate_stage(target: Run | Session, *, extractor: str | None = None,
                   device: torch.device | str | None = None) -> dict:
    """Score every samples file of the run against the real evaluation split (and, for InfoGAN, how well
    its categorical code matches the classes)."""
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
