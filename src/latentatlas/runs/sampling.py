"""The sample stage: fit each sampler of the config on the training codes, draw, decode and save, with each
sampler's figures (its fit curve; a GMM's model-selection curves and per-component draws)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import torch

from latentatlas.data.base import SPLITS, to_uint8_nhwc
from latentatlas.rng import choice, derive_seed, make_generator
from latentatlas.runs.figures import save_image_grid, save_line_plot
from latentatlas.runs.session import Session, as_session
from latentatlas.runs.store import Run
from latentatlas.validate import check_finite, check_number

COMPONENT_ROWS = 12     # rows of a GMM's per-component figure: half most, half least populated components


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
        try:
            z, summary = _fit_and_draw(session, spec, sampler, z_train, z_test, n, labels)
        except ValueError as err:   # a setting the codes refuse (k above their number): name the sampler
            raise ValueError(str(err) if str(err).startswith("sampler ") else f"sampler {spec!r}: {err}") from None
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
    counts = torch.bincount(labels, minlength=session.data.n_classes).double()
    return choice(counts, session.data.n_classes, n, generator=make_generator(seed))


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
