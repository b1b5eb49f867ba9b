"""``gmm-k``: is the number of Gaussian-mixture components that BIC picks the one that gives the best samples?

For every k of a log grid and every seed: fit a GMM on the training codes, record the fit time, the mean
held-out log-likelihood (validation codes; test codes when there is no validation split), BIC and AIC on
the training codes, then decode ``n_samples`` draws and score them against the real evaluation images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentatlas.latent.samplers.gmm import GMM
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, best, mean_sd, register, summarise
from latentatlas.studies.plots import panel_plot
from latentatlas.latent.samplers.gmm_em import COVARIANCE_TYPES
from latentatlas.validate import rule

SCORES = ("frechet", "precision", "recall", "density", "coverage", "copy_fraction")
FIT = ("heldout_loglik", "train_loglik", "bic", "aic", "fit_seconds")


@dataclass(frozen=True)
class GmmKSettings(StudySettings):
    grid = ("ks", "seeds")
    ks: tuple[int, ...] = field(default=(1, 2, 5, 10, 20, 50, 100, 200, 500), metadata=rule(low=1, nonempty=True))
    seeds: int = field(default=3, metadata=rule(low=1))
    n_samples: int = field(default=10000, metadata=rule(low=2))
    covariance: str = field(default="full", metadata=rule(choices=COVARIANCE_TYPES))
    max_iter: int = field(default=100, metadata=rule(low=1))


@register
class GmmK(Study):
    name = "gmm-k"
    question = ("Is the number of GMM components that BIC (or AIC, or held-out likelihood) picks the number "
                "that gives the best samples?")
    Settings = GmmKSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"k": int(k), "seed": s} for k in sorted(set(self.settings.ks)) for s in range(self.settings.seeds)]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, float]:
        s, k = self.settings, cell["k"]
        z, held = ctx.codes("train"), ctx.heldout_codes()
        if k > z.shape[0]:
            raise ValueError(f"gmm-k.ks: expected k <= {z.shape[0]} (training codes), got {k}")
        gmm = GMM(k=k, covariance=s.covariance, max_iter=s.max_iter)
        t0 = time.perf_counter()
        gmm.fit(z, generator=ctx.generator(self.name, k, cell["seed"], "fit"))
        out = {"fit_seconds": time.perf_counter() - t0, "heldout_loglik": float(gmm.score_samples(held).mean()),
               "train_loglik": float(gmm.score_samples(z).mean()), "bic": gmm.bic(z), "aic": gmm.aic(z)}
        draws = gmm.sample(s.n_samples, generator=ctx.generator(self.name, k, cell["seed"], "sample"))
        scores = ctx.score_codes(draws.float())
        return {**out, **{key: scores[key] for key in SCORES if key in scores}}

    # ---------------------------------------------------------------------------------------- outputs
    def summary(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return summarise(rows, ("k",), tuple(v for v in (*SCORES, *FIT) if any(v in r for r in rows)))

    def picks(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The row each criterion picks: lowest BIC, AIC, Fréchet distance; highest held-out likelihood."""
        summary = self.summary(rows)
        return {"BIC": best(summary, "bic"), "AIC": best(summary, "aic"),
                "held-out likelihood": best(summary, "heldout_loglik", lowest=False),
                "Fréchet distance": best(summary, "frechet")}

    def table(self, rows: list[dict[str, Any]]) -> Table:
        summary, picks = self.summary(rows), self.picks(rows)
        header = ["k", "Fréchet distance", "precision", "recall", "copy fraction", "held-out log-lik",
                  "BIC", "AIC", "fit s", "picked by"]
        body = []
        for r in summary:
            chosen = ", ".join(name for name, p in picks.items() if p["k"] == r["k"])
            body.append([r["k"], mean_sd(r, "frechet"), mean_sd(r, "precision"), mean_sd(r, "recall"),
                         mean_sd(r, "copy_fraction") if r.get("copy_fraction") is not None else "",
                         mean_sd(r, "heldout_loglik"), r["bic"], r["aic"], r["fit_seconds"], chosen])
        s = self.settings
        notes = [f"{s.covariance} covariances; mean ± sd over {s.seeds} seed(s); {s.n_samples} decoded samples "
                 "per cell against the real evaluation images; BIC and AIC on the training codes, held-out "
                 "log-likelihood (nats per code) on the validation codes"]
        return Table(header, body, notes, title="Sample quality and model selection against the number of components")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        summary, picks = self.summary(rows), self.picks(rows)
        marks = {f"{name} k={p['k']}": p["k"] for name, p in picks.items() if name in ("BIC", "AIC")}
        panel_plot(folder / "gmm-k.png", summary, "k", [("Fréchet distance", ["frechet"]),
                   ("precision / recall", ["precision", "recall"]), ("held-out log-likelihood", ["heldout_loglik"]),
                   ("fit seconds", ["fit_seconds"])], xlabel="components k", logx=True, marks=marks)
        return {"gmm-k.png": "Fréchet distance, precision and recall of decoded samples, held-out log-likelihood "
                             "and fit time against k (mean ± sd over seeds); dashed: the k that BIC and AIC pick"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        picks = self.picks(rows)
        by_fd = picks["Fréchet distance"]
        out = []
        for name in ("BIC", "AIC", "held-out likelihood"):
            p = picks[name]
            if p["k"] == by_fd["k"]:
                verdict = "the k with the best samples"
            else:
                gap = p["frechet"] - by_fd["frechet"]
                if min(row.get("n", 1) for row in (p, by_fd)) < 2:   # one seed: its sd of 0 is no spread
                    against = "one seed, so no spread to set it against"
                else:
                    noise = (p.get("frechet_sd") or 0) + (by_fd.get("frechet_sd") or 0)
                    against = f"{'within' if gap <= noise else 'beyond'} the seed-to-seed spread"
                verdict = (f"not the best-sample k ({by_fd['k']}, Fréchet distance {fmt_number(by_fd['frechet'])}): "
                           f"+{fmt_number(gap)} ({fmt_number(100 * gap / by_fd['frechet'], 2)}%), {against}")
            out.append(f"{name} picks k={p['k']} (Fréchet distance {fmt_number(p['frechet'])}): {verdict}.")
        first = min(self.summary(rows), key=lambda r: r["k"])
        if first["k"] == by_fd["k"]:
            out.append(f"The smallest k ({first['k']}) gives the best samples: more components do not help here.")
        else:
            out.append(f"From k={first['k']} to k={by_fd['k']} the Fréchet distance falls from "
                       f"{fmt_number(first['frechet'])} to {fmt_number(by_fd['frechet'])}; recall "
                       f"{fmt_number(first['recall'])} -> {fmt_number(by_fd['recall'])}.")
        return out
