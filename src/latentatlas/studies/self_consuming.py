"""``self-consuming``: does a latent generative model trained on its own samples go MAD (Alemohammad et al.,
"Self-consuming generative models go MAD", 2023), and does fresh real data stop it?

A generation is the run's whole latent pipeline: its autoencoder plus a GMM on the codes of the generation's
training images.  Generation 0 is the run's autoencoder with a GMM on the codes of ``n_images`` real training
images; generation t+1 fine-tunes generation t's autoencoder for ``epochs`` epochs on its training set (see
:mod:`~latentatlas.studies.self_consuming_loop` for the four loops) and refits the GMM.  Per generation the
Judge scores ``n_eval`` samples against the real evaluation images.

Sampling bias lambda keeps the lambda share of draws that the generation's own GMM finds most likely (the
``density`` realism, default): the paper's bias is the model's truncation towards its modes, it keeps the
fully synthetic loop closed (no real data enters it) and it never looks at the evaluation images.  ``judge``
uses the Judge's realism score (Kynkäänniemi et al. 2019) against ``n_realism_reference`` training images
instead; it is the default filter of the interpolation loop, whose question is whether keeping the decoded
interpolations that look real moves the decoded manifold toward the data.

Resume: a cell is one (loop, lambda, seed) with per-generation lists; inside a cell each generation's model
(autoencoder weights and GMM, a few MB) is checkpointed in ``studies/self-consuming/cells/CELL/latest.pt``
after it is measured, so a killed study continues after the last finished generation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from latentatlas.fileio import torch_save
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, mean_sd, register, summarise
from latentatlas.studies.plots import panel_plot
from latentatlas.studies.self_consuming_loop import (LOOPS, GenerationStore, LatentPipeline, LoopSpec, RealData,
                                                     Recipe, model_realism, run_loop)
from latentatlas.latent.samplers.gmm_em import COVARIANCE_TYPES
from latentatlas.validate import rule

SCORES = ("frechet", "precision", "recall", "coverage", "classes_covered")
SHOW = 12    # samples per generation in a cell's figure


@dataclass(frozen=True)
class SelfConsumingSettings(StudySettings):
    grid = ("loops", "lambdas", "seeds")
    loops: tuple[str, ...] = field(default=LOOPS, metadata=rule(choices=LOOPS, nonempty=True))
    lambdas: tuple[float, ...] = field(default=(1.0, 0.5),   # sampling bias (interpolation loop: share kept)
                                       metadata=rule(low=0, high=1, strict=True, nonempty=True))
    seeds: int = field(default=1, metadata=rule(low=1))
    generations: int = field(default=3, metadata=rule(low=1))        # G, after generation 0
    n_images: int = field(default=3000, metadata=rule(low=2))       # training images per generation
    real_fraction: float = field(default=0.5, metadata=rule(low=0, high=1, strict=True))  # mixed loops
    epochs: int = field(default=2, metadata=rule(low=1))             # fine-tuning epochs per generation
    lr: float | None = field(default=None, metadata=rule(low=0, strict=True))   # None: the run's
    batch_size: int | None = field(default=None, metadata=rule(low=1))          # None: the run's
    gmm_k: int = field(default=20, metadata=rule(low=1))
    covariance: str = field(default="full", metadata=rule(choices=COVARIANCE_TYPES))
    n_eval: int = field(default=3000, metadata=rule(low=2))          # samples scored per generation
    bias: str = field(default="density", metadata=rule(choices=("density", "judge")))
    interpolation: str = field(default="midpoint", metadata=rule(choices=("midpoint", "uniform")))
    interpolation_filter: str = field(default="judge", metadata=rule(choices=("judge", "density")))
    n_realism_reference: int = field(default=10000, metadata=rule(low=2))   # training images (judge realism)
    threshold: float = field(default=0.05, metadata=rule(low=0))     # relative change that counts (findings)

    def check(self) -> None:
        if self.real_fraction >= 1:
            raise ValueError(f"self-consuming.real_fraction: expected a share in (0, 1), got {self.real_fraction!r}")


@register
class SelfConsuming(Study):
    name = "self-consuming"
    question = ("Does a latent generative model retrained on its own samples lose quality (Fréchet distance, "
                "precision) or diversity (recall) over generations, does sampling bias speed it up, and does "
                "fresh real data stop it?")
    Settings = SelfConsumingSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        s = self.settings
        return [{"loop": loop, "lambda": float(lam), "seed": seed} for loop in dict.fromkeys(s.loops)
                for lam in sorted(set(s.lambdas), reverse=True) for seed in range(s.seeds)]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, list[float]]:
        from latentatlas.data.base import to_uint8

        s, loop, lam, seed = self.settings, cell["loop"], cell["lambda"], cell["seed"]
        first, real = self._generation_zero(ctx, seed)
        folder = study_folder(ctx, self.name) / "cells" / cell_name(cell)
        spec = LoopSpec(loop, lam, s.generations, s.n_images, s.real_fraction, s.n_eval)
        filter_by = s.interpolation_filter if loop == "interpolation" else s.bias
        realism = self._judge_realism(ctx) if filter_by == "judge" else model_realism
        def measure(model, x: torch.Tensor) -> dict[str, float]:    # without the memorisation search
            return {k: v for k, v in ctx.judge.score(x, memorisation=False).items() if k in SCORES}

        def generator(t: int, what: str) -> torch.Generator:
            return ctx.generator(self.name, loop, str(lam), seed, t, what)

        def keep_shown(t: int, x: torch.Tensor) -> None:
            torch_save({"images": to_uint8(x[:SHOW])}, folder / f"shown-{t}.pt")

        folder.mkdir(parents=True, exist_ok=True)
        rows = run_loop(first.with_recipe(folder=folder), spec, real, generator, measure, realism=realism,
                        store=GenerationStore(folder, self._key(ctx, cell)), on_measured=keep_shown)
        self._sample_figure(folder, len(rows))
        return {k: [row.get(k) for row in rows] for k in rows[0]}

    # ------------------------------------------------------------------------------------ generation 0
    def _generation_zero(self, ctx, seed: int) -> tuple[LatentPipeline, RealData]:
        """The run's autoencoder with a GMM on the codes of ``n_images`` real training images (drawn with the
        seed; also the fixed real set), and the fresh real draws; made once per seed."""
        cache = ctx.cache.setdefault(self.name, {})
        if seed in cache:
            return cache[seed]
        from latentatlas.data.base import to_float

        s, session = self.settings, _session(ctx)
        images = session.data.part("train").images
        if s.n_images > images.shape[0]:
            raise ValueError(f"self-consuming.n_images: expected at most {images.shape[0]} (the run's training "
                             f"images), got {s.n_images}")
        fixed = to_float(images[torch.randperm(images.shape[0], generator=ctx.generator(self.name, seed, "real"))
                                [:s.n_images]])

        def fresh(m: int, generator: torch.Generator) -> torch.Tensor:
            return to_float(images[torch.randperm(images.shape[0], generator=generator)[:m]])

        train = session.config.train
        train = dataclasses.replace(train, epochs=s.epochs, patience=None, max_steps=None, max_minutes=None,
                                    progress=False, lr=s.lr if s.lr is not None else train.lr,
                                    batch_size=s.batch_size if s.batch_size is not None else train.batch_size)
        recipe = Recipe(train, study_folder(ctx, self.name), {"k": s.gmm_k, "covariance": s.covariance},
                        str(session.device), s.interpolation)
        first = LatentPipeline.on_images(session.model, fixed, recipe, ctx.generator(self.name, seed, "gmm"))
        cache[seed] = first, RealData(fixed, fresh)
        return cache[seed]

    def _judge_realism(self, ctx):
        """Realism (Kynkäänniemi et al.) of images against ``n_realism_reference`` training images in the
        Judge's features (not the evaluation images the scores use)."""
        cache = ctx.cache.setdefault(self.name, {})
        if "realism" not in cache:
            from latentatlas.studies.judge import Judge

            train = ctx.judge.train
            if train is None:
                raise ValueError("self-consuming: the judge realism needs the Judge's training features")
            pick = torch.randperm(train.shape[0], generator=ctx.generator(self.name, "realism"))
            reference = Judge(ctx.judge.features, train[pick[:self.settings.n_realism_reference]])
            cache["realism"] = lambda model, x: reference.realism(reference.embed(x)[0])
        return cache["realism"]

    def _key(self, ctx, cell: dict[str, Any]) -> str:
        """What a generation checkpoint of ``cell`` must match: the settings outside the grid, the cell, the
        run's config and the run's autoencoder weights."""
        from latentatlas.fileio import content_hash
        from latentatlas.runs.figures import config_hash

        cache = ctx.cache.setdefault(self.name, {})
        if "run" not in cache:
            session = _session(ctx)
            cache["run"] = [config_hash(session.run.config_dict()), content_hash(session.model.state_dict())]
        s = self.settings
        return content_hash({"settings": {k: v for k, v in s.values().items() if k not in s.grid},
                             "cell": cell, "run": cache["run"]})

    def _sample_figure(self, folder: Path, generations: int) -> None:
        """One row of samples per generation (from the cell's shown-T.pt files) in the study folder."""
        from latentatlas.fileio import torch_load
        from latentatlas.runs.figures import save_image_grid

        rows = [torch_load(folder / f"shown-{t}.pt", "shown samples")["images"] for t in range(generations)]
        save_image_grid(folder.parent.parent / f"samples-{folder.name}.png", torch.cat(rows), nrow=SHOW)

    # ---------------------------------------------------------------------------------------- outputs
    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per (loop, lambda, generation): mean and sd over seeds of every score."""
        long = [{"loop": r["loop"], "lambda": r["lambda"], "generation": t,
                 **{k: r[k][t] for k in (*SCORES, *INTERP) if k in r and r[k] is not None}}
                for r in rows for t in range(len(r["frechet"]))]
        values = tuple(k for k in (*SCORES, *INTERP) if any(k in r for r in long))
        out = summarise(long, ("loop", "lambda", "generation"), values)
        for r in out:
            r["curve"] = f"{r['loop']} λ={r['lambda']:g}"
        return out

    def curves(self, rows: list[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
        """The summary rows of each (loop, lambda), by generation."""
        out: dict[tuple[str, float], list[dict]] = {}
        for r in self.summary(rows):
            out.setdefault((r["loop"], r["lambda"]), []).append(r)
        return {key: sorted(v, key=lambda r: r["generation"]) for key, v in out.items()}

    def table(self, rows: list[dict[str, Any]]) -> Table:
        summary = self.summary(rows)
        extra = [(k, label) for k, label in (("classes_covered", "classes covered"),
                                             ("interp_precision", "interpolations: precision"),
                                             ("interp_frechet", "interpolations: Fréchet distance"))
                 if any(r.get(k) is not None for r in summary)]
        header = ["loop", "λ", "generation", "Fréchet distance", "precision", "recall", "coverage",
                  *[label for _, label in extra]]
        body = [[r["loop"], r["lambda"], r["generation"], mean_sd(r, "frechet"), mean_sd(r, "precision"),
                 mean_sd(r, "recall"), mean_sd(r, "coverage"),
                 *[mean_sd(r, k) if r.get(k) is not None else "" for k, _ in extra]] for r in summary]
        return Table(header, body, self.notes(), title="Sample quality and diversity over self-consuming generations")

    def notes(self) -> list[str]:
        s = self.settings
        bias = ("the generation's own GMM log density of the sample's code" if s.bias == "density" else
                f"the Judge's realism against {s.n_realism_reference} training images")
        kept = ("the GMM log density" if s.interpolation_filter == "density" else
                f"the Judge's realism against {s.n_realism_reference} training images")
        return [f"Generation 0: the run's autoencoder with a {s.covariance} GMM (k={s.gmm_k}) on the codes of "
                f"{s.n_images} real training images; each later generation fine-tunes the previous autoencoder for "
                f"{s.epochs} epoch(s) on its {s.n_images} training images (no real images in fully-synthetic; "
                f"{s.real_fraction:g} of them real in synthetic-augmentation (one fixed set) and fresh-data (a new "
                f"draw each generation)) and refits the GMM on their codes.",
                f"Sampling bias λ: of ceil(m / λ) draws the m scoring highest on {bias} are kept (λ = 1: unbiased); "
                f"scores are those of {s.n_eval} such samples per generation against the real evaluation images "
                "(the Judge's features); mean ± sd over "
                f"{s.seeds} seed(s).",
                f"interpolation loop: each generation is trained on decoded {s.interpolation} interpolations between "
                f"random pairs of the fixed real set's codes, the λ share scoring highest on {kept} kept; its "
                "samples are unbiased and 'interpolations' scores the interpolations before the filter."]

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        summary = self.summary(rows)
        panels = [("Fréchet distance", ["frechet"]), ("precision", ["precision"]), ("recall", ["recall"])]
        if any(r.get("interp_precision") is not None for r in summary):
            panels.append(("precision of decoded interpolations", ["interp_precision"]))
        panel_plot(folder / "self-consuming.png", summary, "generation", panels, xlabel="generation",
                   series="curve")
        figures = {"self-consuming.png": "Fréchet distance, precision and recall of each generation's samples "
                   "against the real evaluation images, one line per loop and sampling bias λ (mean ± sd over "
                   "seeds); last panel: precision of the interpolation loop's decoded interpolations"}
        for cell in sorted({(r["loop"], r["lambda"], r["seed"]) for r in rows}):
            name = cell_name(dict(zip(("loop", "lambda", "seed"), cell)))
            if (folder / f"samples-{name}.png").is_file():
                figures[f"samples-{name}.png"] = (f"{cell[0]}, λ={cell[1]:g}, seed {cell[2]}: {SHOW} samples per "
                                                  "generation, one row per generation (generation 0 on top)")
        return figures

    # --------------------------------------------------------------------------------------- findings
    def change(self, curve: list[dict[str, Any]], key: str) -> tuple[float, float, float, bool]:
        """(first, last, relative change, beyond noise) of ``key`` from generation 0 to the last; a change
        counts when it exceeds ``threshold`` of the first value and the seed-to-seed spread of both ends."""
        a, b = curve[0], curve[-1]
        first, last = a[key], b[key]
        noise = max(self.settings.threshold * abs(first), (a.get(f"{key}_sd") or 0) + (b.get(f"{key}_sd") or 0))
        relative = (last - first) / abs(first) if first else float("inf") if last != first else 0.0
        return first, last, relative, abs(last - first) > noise

    def degradation(self, curve: list[dict[str, Any]]) -> tuple[bool, bool, float]:
        """(quality degrades, diversity degrades, size): quality by the Fréchet distance rising or precision
        falling, diversity by recall falling; size is the largest of those relative changes."""
        fd, precision, recall = (self.change(curve, k) for k in ("frechet", "precision", "recall"))
        quality = (fd[3] and fd[2] > 0) or (precision[3] and precision[2] < 0)
        return quality, recall[3] and recall[2] < 0, max(fd[2], -precision[2], -recall[2])

    def verdicts(self, curve: list[dict[str, Any]]) -> tuple[str, str]:
        """Quality and diversity in words: degrades, improves or holds."""
        fd, precision, recall = (self.change(curve, k) for k in ("frechet", "precision", "recall"))
        quality, diversity, _ = self.degradation(curve)
        better_quality = (fd[3] and fd[2] < 0) or (precision[3] and precision[2] > 0)
        return ("degrades" if quality else "improves" if better_quality else "holds",
                "degrades" if diversity else "improves" if recall[3] and recall[2] > 0 else "holds")

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        curves = self.curves(rows)
        out = [self._curve_line(loop, lam, curve) for (loop, lam), curve in curves.items()]
        lams = sorted({lam for _, lam in curves}, reverse=True)
        for lam in lams:
            if ("fully-synthetic", lam) in curves and ("fresh-data", lam) in curves:
                out.append(self._fresh_line(lam, curves[("fully-synthetic", lam)], curves[("fresh-data", lam)]))
        for loop in ("fully-synthetic", "synthetic-augmentation", "fresh-data"):
            if (loop, 1.0) in curves:
                out += [self._bias_line(loop, lam, curves[(loop, 1.0)], curves[(loop, lam)])
                        for lam in lams if lam < 1 and (loop, lam) in curves]
        out.append(self._verdict(curves))
        return out

    def _curve_line(self, loop: str, lam: float, curve: list[dict[str, Any]]) -> str:
        fd, precision, recall = (self.change(curve, k) for k in ("frechet", "precision", "recall"))
        q, d = self.verdicts(curve)
        line = (f"{loop}, λ={lam:g}, generation 0 -> {curve[-1]['generation']}: Fréchet distance "
                f"{_arrow(fd)}, precision {_arrow(precision)}, recall {_arrow(recall)}: quality {q}, diversity {d}")
        if loop == "interpolation" and curve[0].get("interp_precision") is not None:
            interp = self.change(curve, "interp_precision")
            moves = (("toward the data" if interp[2] > 0 else "away from the data") if interp[3]
                     else "no closer to the data")
            line += (f"; precision of its decoded interpolations {_arrow(interp)}: the decoded manifold between codes "
                     f"moves {moves}")
        return line + "."

    def _fresh_line(self, lam: float, synthetic: list[dict], fresh: list[dict]) -> str:
        q_s, d_s, size_s = self.degradation(synthetic)
        q_f, d_f, size_f = self.degradation(fresh)
        numbers = "; ".join(f"{name} {_percent(self.change(synthetic, key)[2])} fully synthetic vs "
                            f"{_percent(self.change(fresh, key)[2])} with fresh data"
                            for key, name in (("frechet", "Fréchet distance"), ("precision", "precision"),
                                              ("recall", "recall")))
        if not (q_s or d_s):
            return (f"λ={lam:g}: the fully-synthetic loop does not degrade here, so fresh data has nothing to stop "
                    f"({numbers}).")
        if not (q_f or d_f):
            verdict = "fresh data stops the degradation"
        elif size_f <= size_s / 2:
            verdict = "fresh data slows the degradation (by more than half) but does not stop it"
        else:
            verdict = "fresh data does not stop the degradation"
        return f"λ={lam:g}: {verdict} ({numbers})."

    def _bias_line(self, loop: str, lam: float, unbiased: list[dict], biased: list[dict]) -> str:
        r1, rb = self.change(unbiased, "recall"), self.change(biased, "recall")
        p1, pb = self.change(unbiased, "precision"), self.change(biased, "precision")
        faster = rb[2] < r1[2] and abs(rb[1] - r1[1]) > self.settings.threshold * abs(r1[0])
        return (f"Sampling bias in {loop}: with λ={lam:g} recall {_arrow(rb)} vs {_arrow(r1)} at λ=1, precision "
                f"{_arrow(pb)} vs {_arrow(p1)}: diversity is lost {'faster' if faster else 'no faster'} with bias.")

    def _verdict(self, curves: dict) -> str:
        claim = ("The paper's qualitative result (without fresh real data each generation, quality or diversity "
                 "degrades over generations; fresh real data stops or slows it)")
        common = [lam for lam in sorted({lam for _, lam in curves}, reverse=True)
                  if ("fully-synthetic", lam) in curves and ("fresh-data", lam) in curves]
        if not common:
            return f"{claim}: cannot be judged without the fully-synthetic and fresh-data loops at a common λ."
        lam = common[0]
        q_s, d_s, size_s = self.degradation(curves[("fully-synthetic", lam)])
        q_f, d_f, size_f = self.degradation(curves[("fresh-data", lam)])
        reproduced = (q_s or d_s) and (not (q_f or d_f) or size_f <= size_s / 2)
        return (f"{claim}: {'reproduced' if reproduced else 'not reproduced'} at λ={lam:g} (fully-synthetic: "
                f"{_worse(q_s, d_s)}, size {_percent(size_s)}; fresh-data: {_worse(q_f, d_f)}, size "
                f"{_percent(size_f)}).")


INTERP = tuple(f"interp_{k}" for k in SCORES)


def cell_name(cell: dict[str, Any]) -> str:
    """A cell's folder name, e.g. fully-synthetic-lam0.5-seed0."""
    return f"{cell['loop']}-lam{cell['lambda']:g}-seed{cell['seed']}"


def study_folder(ctx, name: str) -> Path:
    from latentatlas.studies.runner import study_folder as folder_of

    return folder_of(ctx, name)


def _session(ctx):
    """The run's session, checked: the study fine-tunes an unconditional autoencoder with continuous codes."""
    from latentatlas.latent.codes import resolve_method

    if ctx.session is None:
        raise ValueError("self-consuming: expected a trained run (the study fine-tunes its autoencoder)")
    model = ctx.session.model
    family = ctx.session.config.model.family
    if resolve_method(model, "auto") != "encoder" or model.code_kind != "continuous" or \
            getattr(model, "conditional", False):
        raise ValueError(f"self-consuming: expected a run of an unconditional autoencoder with continuous codes "
                         f"(ae, vae, aae); the run's model is {family!r}")
    return ctx.session


def _arrow(change: tuple[float, float, float, bool]) -> str:
    first, last, relative, _ = change
    return f"{fmt_number(first)} -> {fmt_number(last)} ({_percent(relative)})"


def _percent(relative: float) -> str:
    return f"{'+' if relative >= 0 else ''}{fmt_number(100 * relative, 2)}%"


def _worse(quality: bool, diversity: bool) -> str:
    parts = [name for name, bad in (("quality", quality), ("diversity", diversity)) if bad]
    return " and ".join(parts) + " degrade" + ("s" if len(parts) == 1 else "") if parts else "no degradation"
