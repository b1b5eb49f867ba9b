"""``kde-bandwidth``: where does a kernel density estimate of the codes start copying its training codes?

For every factor of a log grid (multiples of Scott's bandwidth, as the ``kde`` sampler computes it) and
every seed: fit the ``kde`` sampler with that bandwidth on the training codes, record its mean held-out
log-likelihood (validation codes; test codes when there is none), decode ``n_samples`` draws and score
them against the real evaluation images: Fréchet distance, precision/recall and memorisation (the Judge's
``copy_fraction`` and ``nn_train_ratio`` against the training images).  The draws of one seed share their
kernel centres and unit noise across factors (common random numbers), so factors differ only by the
bandwidth, not by sampling noise.  Factor 0 is the limit of a vanishing bandwidth: the kernel centres (training
codes) themselves, decoded; their copy fraction is the most a KDE can copy through this decoder (decoded
training codes are reconstructions, not the training images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latentatlas.latent.samplers.kde import KDE
from latentatlas.rng import choice
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, best, mean_sd, register, spearman, summarise
from latentatlas.studies.judge import COPY_QUANTILE
from latentatlas.studies.plots import panel_plot
from latentatlas.validate import rule

SCORES = ("frechet", "precision", "recall", "coverage", "copy_fraction", "nn_train_ratio")
FIT = ("bandwidth", "heldout_loglik")


@dataclass(frozen=True)
class KdeBandwidthSettings(StudySettings):
    grid = ("factors", "seeds")
    factors: tuple[float, ...] = field(default=(0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0),   # x Scott's rule
                                       metadata=rule(low=0, strict=True, nonempty=True))
    seeds: int = field(default=2, metadata=rule(low=1))
    n_samples: int = field(default=10000, metadata=rule(low=2))
    copy_ratio: float = field(default=2.0, metadata=rule(low=1, strict=True))   # onset: ratio x copying at Scott
    ceiling_share: float = field(default=0.5, metadata=rule(low=0, high=1, strict=True))   # of bandwidth 0's


@register
class KdeBandwidth(Study):
    name = "kde-bandwidth"
    question = ("Where does a KDE of the codes start copying its training codes, and how does sample quality "
                "trade off against memorisation as the bandwidth shrinks from 2x to 0.05x Scott's rule?")
    Settings = KdeBandwidthSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        factors = [0.0, *sorted(set(map(float, self.settings.factors)))]
        return [{"factor": f, "seed": s} for f in factors for s in range(self.settings.seeds)]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, float]:
        z, factor = ctx.codes("train"), cell["factor"]
        g = ctx.generator(self.name, cell["seed"], "sample")
        if factor == 0:     # the kernel centres the KDE of every factor draws with this generator
            draws = z[choice(None, z.shape[0], self.settings.n_samples, generator=g)]
            scores = ctx.score_codes(draws.float())
            return {"bandwidth": 0.0, **{key: scores[key] for key in SCORES if key in scores}}
        kde = KDE(bandwidth=factor * self.scott_bandwidth(ctx)).fit(z)
        lls = ctx.cache.setdefault((self.name, "heldout_loglik"), {})
        if factor not in lls:           # deterministic in the factor: computed once per factor
            lls[factor] = float(kde.score_samples(ctx.heldout_codes()).mean())
        draws = kde.sample(self.settings.n_samples, generator=g)
        scores = ctx.score_codes(draws.float())
        return {"bandwidth": float(kde.bandwidth_[0]), "heldout_loglik": lls[factor],
                **{key: scores[key] for key in SCORES if key in scores}}

    def scott_bandwidth(self, ctx) -> float:
        """Scott's bandwidth of the training codes as the ``kde`` sampler computes it (isotropic spread)."""
        key = (self.name, "scott")
        if key not in ctx.cache:
            ctx.cache[key] = float(KDE(bandwidth="scott").fit(ctx.codes("train")).bandwidth_[0])
        return ctx.cache[key]

    # ---------------------------------------------------------------------------------------- outputs
    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        values = tuple(v for v in (*SCORES, *FIT) if any(v in r for r in rows))
        return sorted(summarise(rows, ("factor",), values), key=lambda r: r["factor"])

    def analysis(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """What the findings rest on: the KDE rows (factor > 0), the bandwidth-0 row, the best-FD and
        best-likelihood rows, the row nearest Scott's rule, the copying threshold and ceiling level, and the
        largest factors whose mean copy fraction exceeds them."""
        s, summary = self.settings, self.summary(rows)
        kde = [r for r in summary if r["factor"] > 0]
        scott = min(kde, key=lambda r: abs(np.log(r["factor"])))
        out: dict[str, Any] = {"summary": summary, "kde": kde, "zero": next(r for r in summary if r["factor"] == 0),
                               "best_fd": best(kde, "frechet"), "best_ll": best(kde, "heldout_loglik", lowest=False),
                               "scott": scott}
        if scott.get("copy_fraction") is None:
            return out
        out["threshold"] = s.copy_ratio * max(scott["copy_fraction"], COPY_QUANTILE)
        out["level"] = s.ceiling_share * out["zero"]["copy_fraction"]
        for key, level in (("onset", out["threshold"]), ("mostly", out["level"])):
            above = [r for r in kde if r["copy_fraction"] > level]
            out[key] = max(above, key=lambda r: r["factor"]) if above else None
        out["rho_copy"] = spearman([r["factor"] for r in kde], [r["copy_fraction"] for r in kde])
        return out

    def table(self, rows: list[dict[str, Any]]) -> Table:
        a, s = self.analysis(rows), self.settings
        marks = {"training codes (bandwidth 0)": a["zero"], "best FD": a["best_fd"],
                 "best held-out likelihood": a["best_ll"], "Scott's rule": a["scott"], "copying onset": a.get("onset"),
                 f"copies > {fmt_number(s.ceiling_share)} of bandwidth 0": a.get("mostly")}
        memo = a.get("threshold") is not None
        header = ["factor", "bandwidth", "Fréchet distance", "precision", "recall", *(
            ["copy fraction", "nn-train ratio"] if memo else []), "held-out log-lik", "marks"]
        body = []
        for r in a["summary"]:
            chosen = ", ".join(name for name, m in marks.items() if m is not None and m["factor"] == r["factor"])
            body.append([r["factor"], r["bandwidth"], mean_sd(r, "frechet"), mean_sd(r, "precision"),
                         mean_sd(r, "recall"), *([mean_sd(r, "copy_fraction"), mean_sd(r, "nn_train_ratio")]
                                                 if memo else []), r["heldout_loglik"], chosen])
        notes = [f"Gaussian KDE (isotropic bandwidth = factor x Scott's rule n^(-1/(d+4)) x root mean variance "
                 f"of the training codes); mean ± sd over {s.seeds} seed(s); {s.n_samples} decoded samples per "
                 "cell against the real evaluation images, the same kernel centres and noise at every factor of "
                 "a seed; factor 0: those kernel centres (training codes) decoded; held-out log-likelihood in nats "
                 "per code on the validation codes"]
        if memo:
            notes.append(f"copy fraction: share of samples nearer a training image than {100 * COPY_QUANTILE:g}% "
                         f"of held-out images are (about {COPY_QUANTILE:g} for new images); copying onset: the "
                         f"largest factor whose copy fraction exceeds {fmt_number(s.copy_ratio)} x max(its value at "
                         f"Scott's rule, {COPY_QUANTILE:g}) = {fmt_number(a['threshold'])}")
        return Table(header, body, notes, title="Sample quality and memorisation of a KDE against its bandwidth")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        a = self.analysis(rows)
        marks = {f"best FD x{fmt_number(a['best_fd']['factor'])}": a["best_fd"]["factor"]}
        if a.get("onset") is not None:
            marks[f"copying onset x{fmt_number(a['onset']['factor'])}"] = a["onset"]["factor"]
        memo = [k for k in ("copy_fraction", "nn_train_ratio") if k in a["zero"]]
        panels = [("Fréchet distance", ["frechet"]), ("precision / recall", ["precision", "recall"]),
                  ("memorisation", memo), ("held-out log-likelihood", ["heldout_loglik"])]
        panel_plot(folder / "kde-bandwidth.png", a["kde"], "factor", [p for p in panels if p[1]],
                   xlabel="bandwidth / Scott's rule", logx=True, marks=marks)
        zero = a["zero"]
        names = {"frechet": "Fréchet distance", "copy_fraction": "copy fraction", "nn_train_ratio": "nn-train ratio"}
        reference = ", ".join(f"{names[k]} {fmt_number(zero[k])}" for k in ("frechet", *memo))
        return {"kde-bandwidth.png": "Fréchet distance, precision and recall, copy fraction and nearest-training "
                                     "distance ratio of decoded KDE samples, and held-out log-likelihood against "
                                     "the bandwidth factor (mean ± sd over seeds); dashed: the best-FD factor and "
                                     f"the copying onset; decoded training codes (bandwidth 0): {reference}"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        a, s = self.analysis(rows), self.settings
        fd, ll, scott, zero = a["best_fd"], a["best_ll"], a["scott"], a["zero"]
        out = [f"Fréchet distance is lowest at {fmt_number(fd['factor'])} x Scott's bandwidth "
               f"({mean_sd(fd, 'frechet')}; {mean_sd(scott, 'frechet')} at factor {fmt_number(scott['factor'])}, "
               f"{mean_sd(zero, 'frechet')} for "
               f"decoded training codes); held-out likelihood peaks at {fmt_number(ll['factor'])} x "
               f"({fmt_number(ll['heldout_loglik'])} nats per code)."]
        if a.get("threshold") is None:
            return out + ["No training features: memorisation was not measured."]
        onset, mostly = a["onset"], a["mostly"]
        head = (f"Copy fraction is {mean_sd(scott, 'copy_fraction')} at factor {fmt_number(scott['factor'])} "
                f"(new images: {COPY_QUANTILE:g})")
        if onset is None:
            out.append(f"{head} and never exceeds {fmt_number(a['threshold'])} on this grid: no copying onset down to "
                       f"{fmt_number(a['kde'][0]['factor'])} x.")
        else:
            out.append(f"{head}; the largest factor where it exceeds {fmt_number(a['threshold'])} "
                       f"({fmt_number(s.copy_ratio)} x max(that, {COPY_QUANTILE:g})) is "
                       f"{fmt_number(onset['factor'])} x "
                       f"(copy fraction {mean_sd(onset, 'copy_fraction')}): the KDE starts copying there.")
        ceiling = (f"Decoded training codes (bandwidth 0, the most a KDE copies through this decoder) have copy "
                   f"fraction {mean_sd(zero, 'copy_fraction')}; ")
        out.append(ceiling + (f"the KDE copies more than {fmt_number(s.ceiling_share)} of that "
                              f"({fmt_number(a['level'])}) up to {fmt_number(mostly['factor'])} x "
                              f"({mean_sd(mostly, 'copy_fraction')})." if mostly is not None else
                              f"the KDE never copies more than {fmt_number(s.ceiling_share)} of that "
                              f"({fmt_number(a['level'])}) on this grid."))
        copying = onset is not None and fd["factor"] <= onset["factor"]
        out.append(f"Trade-off: at the best-FD factor {fmt_number(fd['factor'])} x the copy fraction is "
                   f"{mean_sd(fd, 'copy_fraction')} and the nn-train ratio {mean_sd(fd, 'nn_train_ratio')} "
                   f"({'inside' if copying else 'outside'} the copying regime: the best samples "
                   f"{'are partly copies' if copying else 'are not copies'}); Spearman rho(factor, copy fraction) = "
                   f"{fmt_number(a['rho_copy'], 2)}.")
        return out
