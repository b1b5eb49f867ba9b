"""``diffusion-steps``: how many sampling steps does the code diffusion sampler (``ddpm``) need?

One ``ddpm`` sampler (the spec ``sampler``) is fitted per seed on the training codes and saved in the study
folder, so that a resumed study draws from the same networks.  Each cell draws ``n_samples`` codes from one
seed's fit: by ancestral DDPM sampling on all T steps of its schedule (``method=ddpm``), or by the DDIM
update on k evenly spaced steps (k from ``ddim_steps``) with an ``eta`` from ``etas`` (0: deterministic; 1:
ancestral steps of stride T/k, the sampler's default at k = T/4; eta 1 on all T steps is the DDPM row and is
not drawn again), then decodes and scores them against the real evaluation images.  Every cell of a seed
starts from the same noise x_T (common random numbers), so cells of a seed differ by the sampling alone.
The draw time (network evaluations only: no decoding or scoring) is a speed figure only on an otherwise
idle machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentatlas.latent.samplers import build_sampler
from latentatlas.latent.samplers.ddpm import DDPM
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, best, mean_sd, register, summarise
from latentatlas.studies.plots import panel_plot
from latentatlas.studies.runner import saved_fit
from latentatlas.validate import rule

SCORES = ("frechet", "precision", "recall", "density", "coverage")
VALUES = (*SCORES, "draw_seconds")
DRAW_PARAMS = ("method", "sample_steps", "eta")     # set per cell; not part of the fit


@dataclass(frozen=True)
class DiffusionStepsSettings(StudySettings):
    grid = ("ddim_steps", "etas", "seeds")
    sampler: str = "ddpm"          # the spec fitted (its method, sample_steps and eta are set per cell)
    ddim_steps: tuple[int, ...] = field(default=(5, 10, 20, 50, 100, 200), metadata=rule(low=1, nonempty=True))
    etas: tuple[float, ...] = field(default=(0.0, 1.0), metadata=rule(low=0, high=1, nonempty=True))
    seeds: int = field(default=2, metadata=rule(low=1))
    n_samples: int = field(default=10000, metadata=rule(low=2))
    tolerance: float = field(default=0.05, metadata=rule(low=0))   # relative FD above DDPM's that still "matches"

    def check(self) -> None:
        diffusion = self.diffusion()
        too_many = [k for k in self.ddim_steps if k > diffusion.steps]
        if too_many:
            raise ValueError(f"diffusion-steps.ddim_steps: expected at most the schedule's {diffusion.steps} steps "
                             f"(sampler {self.sampler!r}), got {too_many}")

    def diffusion(self) -> DDPM:
        """The unfitted sampler of ``sampler``; one clear error when the spec is not a ``ddpm`` spec."""
        try:
            sampler = build_sampler(self.sampler)
        except ValueError as err:
            raise ValueError(f"diffusion-steps.sampler: {err}") from None
        if not isinstance(sampler, DDPM):
            raise ValueError(f"diffusion-steps.sampler: expected a ddpm spec (e.g. 'ddpm:iters=9000'), "
                             f"got {self.sampler!r}")
        return sampler


@register
class DiffusionSteps(Study):
    name = "diffusion-steps"
    question = ("How many sampling steps does the code diffusion sampler need: how do sample quality and draw "
                "time change from ancestral DDPM on all its steps to DDIM (deterministic or stochastic) on a few?")
    Settings = DiffusionStepsSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        s = self.settings
        steps = s.diffusion().steps
        schedules = [("ddpm", 1.0, steps), *(("ddim", float(eta), k) for eta in sorted(set(s.etas))
                                             for k in sorted(set(s.ddim_steps)) if not (eta == 1 and k == steps))]
        return [{"method": m, "eta": eta, "steps": k, "seed": seed} for seed in range(s.seeds)
                for m, eta, k in schedules]

    def fitted(self, ctx, seed: int) -> DDPM:
        """Seed ``seed``'s fitted sampler: loaded from the study folder when this run's codes, seed and spec
        made it, else fitted with the generator ``(diffusion-steps, seed, fit)`` (resumable) and saved there."""
        sampler = self.settings.diffusion()
        settings = {k: v for k, v in sampler.get_params().items() if k not in DRAW_PARAMS}

        def fit(z, checkpoint) -> DDPM:
            return sampler.fit(z, generator=ctx.generator(self.name, seed, "fit"), checkpoint=checkpoint)

        return saved_fit(ctx, self.name, "ddpm", {**settings, "fit_seed": seed}, DDPM, fit)

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, float]:
        sampler = self.fitted(ctx, cell["seed"])
        sampler.sample(2, generator=ctx.generator(self.name, "warm-up"), method="ddim", sample_steps=1)  # untimed
        started = time.perf_counter()
        draws = sampler.sample(self.settings.n_samples, generator=ctx.generator(self.name, cell["seed"], "sample"),
                               method=cell["method"], sample_steps=cell["steps"], eta=cell["eta"])
        seconds = time.perf_counter() - started
        scores = ctx.score_codes(draws.float())
        return {"draw_seconds": seconds, **{key: scores[key] for key in SCORES if key in scores}}

    # ---------------------------------------------------------------------------------------- outputs
    def analysis(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The summarised rows (one per sampler, eta and steps, each with its ``label``), the DDPM row, the
        DDIM rows per eta by steps, the best DDIM row by Fréchet distance, and per eta the fewest steps
        whose Fréchet distance is at most (1 + tolerance) x DDPM's (None when none is)."""
        values = tuple(v for v in VALUES if any(v in r for r in rows))
        summary = summarise(rows, ("method", "eta", "steps"), values)
        for r in summary:
            r["label"] = "DDPM" if r["method"] == "ddpm" else f"DDIM eta={fmt_number(r['eta'])}"
        ddpm = next(r for r in summary if r["method"] == "ddpm")
        ddim = {eta: sorted((r for r in summary if r["method"] == "ddim" and r["eta"] == eta), key=lambda r: r["steps"])
                for eta in sorted({r["eta"] for r in summary if r["method"] == "ddim"})}
        limit = (1 + self.settings.tolerance) * ddpm["frechet"]
        fewest = {eta: next((r for r in members if r["frechet"] <= limit), None) for eta, members in ddim.items()}
        every = [r for members in ddim.values() for r in members]
        return {"summary": [ddpm, *every], "ddpm": ddpm, "ddim": ddim, "limit": limit,
                "best": best(every, "frechet") if every else None, "fewest": fewest}

    def table(self, rows: list[dict[str, Any]]) -> Table:
        a, s = self.analysis(rows), self.settings
        header = ["sampler", "steps", "Fréchet distance", "precision", "recall", "coverage", "draw s", "marks"]
        body = []
        for r in a["summary"]:
            marks = ["best DDIM"] if r is a["best"] else []
            marks += ["fewest steps matching DDPM"] if r is a["fewest"].get(r["eta"]) else []
            body.append([r["label"], r["steps"], mean_sd(r, "frechet"), mean_sd(r, "precision"),
                         mean_sd(r, "recall"), mean_sd(r, "coverage") if r.get("coverage") is not None else "",
                         r["draw_seconds"], ", ".join(marks)])
        notes = [f"sampler {s.sampler!r} fitted once per seed on the training codes; mean ± sd over {s.seeds} "
                 f"seed(s); {s.n_samples} decoded samples per cell against the real evaluation images, every "
                 "cell of a seed from the same noise x_T; DDPM: ancestral sampling on every step of the schedule "
                 "(the DDIM update at eta 1 on every step); DDIM: the update on that many evenly spaced steps, "
                 "deterministic at eta 0; steps = network evaluations per draw; draw s: seconds for the "
                 f"{s.n_samples} codes (mean over seeds), not decoding or scoring; matching DDPM: Fréchet distance "
                 f"at most {fmt_number(1 + s.tolerance)} x DDPM's ({fmt_number(a['limit'])})"]
        return Table(header, body, notes, title="Sample quality and draw time of the diffusion sampler against "
                                                "its sampling steps")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        a = self.analysis(rows)
        panel_plot(folder / "diffusion-steps.png", a["summary"], "steps", [
            ("Fréchet distance", ["frechet"]), ("precision / recall", ["precision", "recall"]),
            ("draw seconds", ["draw_seconds"])], xlabel="sampling steps (network evaluations)", logx=True,
            logy=("Fréchet distance", "draw seconds"), series="label")
        return {"diffusion-steps.png": "Fréchet distance, precision and recall of decoded samples, and the draw's "
                                       "seconds against the number of sampling steps (mean ± sd over seeds; log "
                                       "scales but for precision and recall): DDIM "
                                       "on k steps at each eta, and ancestral DDPM on all steps (one point)"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        a, s = self.analysis(rows), self.settings
        ddpm, top = a["ddpm"], a["best"]
        out = [f"Ancestral DDPM on all {ddpm['steps']} steps: Fréchet distance {mean_sd(ddpm, 'frechet')}, "
               f"precision {fmt_number(ddpm['precision'])}, recall {fmt_number(ddpm['recall'])}, "
               f"{fmt_number(ddpm['draw_seconds'])} s per {s.n_samples} draws."]
        if top is None:
            return out + ["No DDIM steps were studied."]
        out.append(f"The best DDIM samples: {top['label']} on {top['steps']} steps (Fréchet distance "
                   f"{mean_sd(top, 'frechet')}, {'below' if top['frechet'] < ddpm['frechet'] else 'above'} DDPM's; "
                   f"precision {fmt_number(top['precision'])}, recall {fmt_number(top['recall'])}).")
        for eta, few in a["fewest"].items():
            label = a["ddim"][eta][0]["label"]
            if few is None:
                out.append(f"{label}: no step count reaches {fmt_number(1 + s.tolerance)} x DDPM's Fréchet "
                           f"distance ({fmt_number(a['limit'])}).")
                continue
            speed = ddpm["draw_seconds"] / few["draw_seconds"] if few["draw_seconds"] > 0 else float("inf")
            out.append(f"{label}: the fewest steps within {fmt_number(1 + s.tolerance)} x DDPM's Fréchet distance "
                       f"are {few['steps']} (Fréchet distance {mean_sd(few, 'frechet')}), "
                       f"{ddpm['steps'] / few['steps']:.3g}x fewer network evaluations; draws "
                       f"{fmt_number(speed)}x faster ({fmt_number(few['draw_seconds'])} s).")
        return out
