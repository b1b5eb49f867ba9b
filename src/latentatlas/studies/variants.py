"""Studies that train: short variants of a study's run, each the run's config with a few changes (model
family, beta, latent size; a shorter training budget), trained into ``RUN/studies/NAME/runs/CELL/``.

A variant is reused when it is finished (best.pt, latents.npz and its reconstruction errors present, made
with the same config), resumed from ``checkpoints/last.pt`` when its training was interrupted, and started
again when its folder holds a variant of other settings.  Its samples are judged by the PARENT run's
:class:`~latentatlas.studies.judge.Judge` (same extractor, same real images), so scores of different
variants are comparable.  Every variant trains with the parent's seed: the same data split, the same
initial draws and batch order, so variants differ by their settings only.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from latentatlas import config as config_mod
from latentatlas.config import RunConfig
from latentatlas.runs.pipeline import encode_stage, train_session, training_codes
from latentatlas.runs.session import Session, as_session
from latentatlas.runs.store import Run
from latentatlas.studies.runner import study_folder

log = logging.getLogger(__name__)

SCORES = ("frechet", "precision", "recall", "density", "coverage", "classes_covered")
IGNORED = ("name", "runs_dir", "parent")    # config keys that may differ between a variant and its reuse
ACTIVE_VARIANCE = 0.01                      # a code dimension is active when Var_x E[z|x] exceeds this


def variants_folder(ctx, study: str) -> Path:
    """Where study ``study`` trains its variants: RUN/studies/NAME/runs."""
    return study_folder(ctx, study) / "runs"


def check_trainable(ctx, study: str, families: tuple[str, ...] | None = None) -> RunConfig:
    """The parent run's config, after checking that ``study`` can train variants of it: a run folder (not
    arrays), a model with an encoder, continuous codes and no class conditioning (and, given ``families``,
    one of them)."""
    from latentatlas.models import MODELS

    if ctx.session is None:
        raise ValueError(f"study {study}: trains variants of a run, so it needs a run folder (got arrays {ctx.name!r})")
    config = ctx.session.config
    family = MODELS.get(config.model.family)
    problem = None
    if families is not None and config.model.family not in families:
        problem = f"expected a run of family {' or '.join(families)}"
    elif not family.model.has_encoder or family.model.code_kind != "continuous":
        problem = "expected a model with an encoder and continuous codes"
    elif getattr(config.model, "conditional", False):
        problem = "expected an unconditional model (its samples need no labels)"
    if problem:
        raise ValueError(f"study {study}: {problem}, got {config.model.family!r} (run {ctx.name})")
    return config


def variant_config(parent: RunConfig, *, name: str, runs_dir: Path, parent_path: Path, model: dict[str, Any],
                   epochs: int, limit: int | None = None) -> RunConfig:
    """The parent's config with ``model`` changes (a family change keeps only the fields the new family
    has), ``epochs`` as the whole training budget (no step or time limit), at most ``limit`` images, and no
    tracker (a variant writes nothing outside its folder)."""
    from dataclasses import fields

    from latentatlas.models import MODELS

    values = config_mod.to_dict(parent)
    family = model.get("family", parent.model.family)
    known = {f.name for f in fields(MODELS.get(family).config)}
    values["model"] = {k: v for k, v in {**values["model"], **model, "family": family}.items() if k in known}
    values["train"].update(epochs=int(epochs), max_steps=None, max_minutes=None)
    if values["model"].get("kl_weight") and values["model"].get("kl_warmup_epochs", 0) >= epochs:
        log.warning("variant %s: its KL warm-up (%s epochs) lasts the whole budget of %d epoch(s), so the KL "
                    "weight never reaches %s", name, values["model"]["kl_warmup_epochs"], epochs,
                    values["model"]["kl_weight"])
    if limit is not None:
        values["data"]["limit"] = min(limit, parent.data.limit or limit)
    values.update(name=name, runs_dir=str(runs_dir), parent=str(parent_path), track=None)
    return config_mod.from_dict(values)


def train_variant(config: RunConfig) -> Session:
    """The session of the variant ``config`` describes, trained and encoded: reused when finished, resumed
    from last.pt when interrupted, trained from the start otherwise; a folder made with other settings is
    replaced."""
    path = Path(config.runs_dir) / config.name
    if (path / "config.yaml").is_file():
        changes = [c for c in config_mod.diff(Run.open(path).config_dict(), config_mod.to_dict(config))
                   if c[0] not in IGNORED]
        if changes:
            log.warning("%s was trained with other settings (%s); training it again", path,
                        ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes))
            shutil.rmtree(path)
    run = Run(path)
    if _trained(run) and _encoded(run):
        return as_session(run)
    if _trained(run):
        session = as_session(run)
    else:
        resume = run.checkpoint_path("last").is_file()
        log.info("%s variant %s", "resuming" if resume else "training", path)
        session = train_session(config, resume=resume)
    encode_stage(session)
    return session


def _trained(run: Run) -> bool:
    return run.checkpoint_path("best").is_file() and "train" in _metrics(run)


def _encoded(run: Run) -> bool:
    return run.latents_path.is_file() and "reconstruction" in _metrics(run)


def _metrics(run: Run) -> dict:
    return run.read_metrics() if run.metrics_path.is_file() else {}


def variant(ctx, study: str, cell: str, *, model: dict[str, Any], epochs: int, limit: int | None = None) -> Session:
    """Train (or reuse) variant ``cell`` of the context's run for study ``study``; its session."""
    config = variant_config(ctx.session.config, name=cell, runs_dir=variants_folder(ctx, study),
                            parent_path=ctx.folder, model=model, epochs=epochs, limit=limit)
    return train_variant(config)


# ----------------------------------------------------------------------------------------- measures
def codes(session: Session, split: str) -> torch.Tensor:
    """Posterior means (n, d) float32 of ``split`` of a variant."""
    return training_codes(session.run, "mean", split).float()


def heldout_codes(session: Session) -> torch.Tensor:
    """Posterior means of the validation split (the test split when there is none)."""
    z = codes(session, "val")
    return z if z.shape[0] > 0 else codes(session, "test")


def code_statistics(session: Session) -> dict[str, float | None]:
    """On the held-out codes of a variant: ``kl`` (mean KL(q(z|x) || N(0, I)) per code, nats; None without
    log-variances), ``active_dims`` (dimensions whose posterior mean varies over images by more than
    ``ACTIVE_VARIANCE``; Burda et al. 2016) and ``code_variance`` (mean per-dimension variance of the means)."""
    from latentatlas.data.base import SPLITS

    latents = session.run.load_latents()
    split = SPLITS.index("val") if (latents["split"] == SPLITS.index("val")).any() else SPLITS.index("test")
    rows = latents["split"] == split
    mean = torch.from_numpy(latents["z_mean"][rows]).double()
    var = mean.var(0)
    kl = None
    if "z_logvar" in latents:
        logvar = torch.from_numpy(latents["z_logvar"][rows]).double()
        kl = float((0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(1)).mean())
    return {"kl": kl, "active_dims": int((var > ACTIVE_VARIANCE).sum()), "code_variance": float(var.mean())}


def training_summary(session: Session) -> dict[str, float]:
    """The variant's reconstruction MSE on its evaluation split, training seconds and epochs."""
    metrics = session.run.read_metrics()
    return {"recon_mse": metrics["reconstruction"]["mse"], "train_seconds": metrics["train"].get("train_seconds"),
            "epochs_run": metrics["train"].get("epochs_run")}


def judge_codes(ctx, session: Session, z: torch.Tensor, prefix: str) -> dict[str, float]:
    """Scores (``PREFIX_frechet``, ...) of the images the variant decodes from codes ``z`` (n, d), judged by
    the parent run's Judge."""
    scores = ctx.judge.score(session.code_map.decode(z.float()))
    return {f"{prefix}_{key}": scores[key] for key in SCORES if key in scores}


def prior_codes(session: Session, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` codes (n, d) from the variant model's own prior (N(0, I) for an AE and a VAE)."""
    return session.model.prior_sample(n, generator=generator).cpu()


def subsample(z: torch.Tensor, n: int | None, generator: torch.Generator) -> torch.Tensor:
    """At most ``n`` rows of ``z`` drawn without replacement (all rows when n is None or larger)."""
    if n is None or n >= z.shape[0]:
        return z
    return z[torch.randperm(z.shape[0], generator=generator)[:n]]


# ----------------------------------------------------------------------------------------- findings
def trend(rows: list[dict[str, Any]], x: str, y: str) -> dict[str, Any]:
    """How ``y`` changes with ``x`` over the rows that have both: Spearman's rho, the rows at the smallest and
    largest x, and a word (rises / falls when |rho| >= 0.5, else no monotone trend)."""
    from latentatlas.studies.base import spearman

    usable = sorted((r for r in rows if r.get(x) is not None and r.get(y) is not None), key=lambda r: r[x])
    if not usable:
        raise ValueError(f"no row has both {x!r} and {y!r}")
    rho = spearman([r[x] for r in usable], [r[y] for r in usable])
    word = "rises" if rho >= 0.5 else "falls" if rho <= -0.5 else "shows no monotone trend"
    if rho != rho:     # nan: fewer than 3 rows or a constant value
        word = "is constant" if len({r[y] for r in usable}) == 1 else "has too few points for a trend"
    return {"rho": rho, "first": usable[0], "last": usable[-1], "word": word}


def trend_text(rows: list[dict[str, Any]], x: str, y: str, *, label: str, x_label: str) -> str:
    """One sentence of :func:`trend`: e.g. ``"BIC's k rises with beta (Spearman rho = +0.94; beta=0: 50 ->
    beta=4: 2)"``."""
    from latentatlas.runs.tables import fmt_number

    t = trend(rows, x, y)
    if t["first"] is t["last"]:
        return f"{label}: {fmt_number(t['first'][y])} at {x_label}={fmt_number(t['first'][x])} (one point: no trend)"
    rho = f"Spearman ρ = {t['rho']:+.2f}; " if t["rho"] == t["rho"] else ""
    return (f"{label} {t['word']} with {x_label} ({rho}{x_label}={fmt_number(t['first'][x])}: "
            f"{fmt_number(t['first'][y])} -> {x_label}={fmt_number(t['last'][x])}: {fmt_number(t['last'][y])})")


def training_note(settings, per: str) -> str:
    """The table note every training study carries: one training ``per`` cell (e.g. "β"), its budget, and
    that the differences between cells include training noise."""
    images = "" if settings.limit is None else f", {settings.limit} images"
    return (f"One training per {per} of {settings.epochs} epoch(s) from the run's config and seed (same split, "
            f"initial draws and batch order){images}; one training per {per}, so differences between cells "
            "include training noise that is not measured here")
