"""``components``: do low-variance mixture components reproduce training images, and high-variance ones give
diverse but noisy images?

One GMM with ``k`` components is fitted on the training codes (a fixed generator; saved in the study folder
so that a resumed study scores the same mixture).  One cell per component: draw ``n_per`` codes from that
component alone, decode them and score realism (precision against the real evaluation images, the Judge's
mean realism score), diversity (recall; mean pairwise feature distance of the component's samples) and
memorisation (copy fraction, nearest-training distance ratio; no Fréchet distance: one component is not
the distribution), next to the component's weight, mean
variance per dimension and log-determinant per dimension.  Spearman correlations across components test
the claim part by part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentatlas.latent.samplers.gmm import GMM
from latentatlas.runs.figures import pyplot, save_figure
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies.base import Study, StudySettings, register, spearman
from latentatlas.studies.runner import saved_fit
from latentatlas.validate import rule

SCORES = ("precision", "recall", "copy_fraction", "nn_train_ratio", "confidence")
# (value, expected sign of its Spearman correlation with the variance, the part of the claim it tests)
PARTS = (("copy_fraction", -1, "low-variance components copy training images"),
         ("diversity", +1, "high-variance components are diverse"),
         ("precision", -1, "high-variance components are noisy (lower precision)"))
Z_95 = 1.96     # two-sided 5 % level of Spearman's rho, whose sd is about 1/sqrt(k - 1) under independence


@dataclass(frozen=True)
class ComponentsSettings(StudySettings):
    k: int = field(default=100, metadata=rule(low=3))
    covariance: str = field(default="full", metadata=rule(choices=("full", "diag", "spherical")))
    max_iter: int = field(default=100, metadata=rule(low=1))
    n_per: int = field(default=500, metadata=rule(low=2))       # decoded samples per component


@register
class Components(Study):
    name = "components"
    question = ("Do low-variance GMM components reproduce training images while high-variance ones give diverse "
                "but noisy images?")
    Settings = ComponentsSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"component": j} for j in range(self.settings.k)]

    def mixture(self, ctx) -> GMM:
        """The study's GMM: loaded from the study folder when this run, seed and fit settings made it, else
        fitted with the generator ``(components, fit)`` and saved there."""
        s, n = self.settings, ctx.codes("train").shape[0]
        if s.k > n:
            raise ValueError(f"components.k: expected k <= {n} (training codes), got {s.k}")
        settings = {"k": s.k, "covariance": s.covariance, "max_iter": s.max_iter}

        def fit(z: torch.Tensor, checkpoint) -> GMM:
            return GMM(**settings).fit(z, generator=ctx.generator(self.name, "fit"))

        return saved_fit(ctx, self.name, "gmm", settings, GMM, fit)

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, float]:
        gmm, j = self.mixture(ctx), cell["component"]
        cov = gmm.covariances_[j]
        logdet = {"full": lambda: torch.linalg.slogdet(cov)[1], "diag": lambda: cov.log().sum(),
                  "spherical": lambda: gmm.n_features_in_ * cov.log()}[gmm.covariance]()
        draws = gmm.sample(self.settings.n_per, generator=ctx.generator(self.name, j, "sample"), component=j)
        judge = ctx.judge
        feats, logits = judge.embed(ctx.decode(draws.float()))
        scores = {**judge.reference.score(feats.float()), **(judge.memorisation(feats) if judge.train is not None
                                                               else {})}
        if logits is not None:
            scores["confidence"] = float(logits.softmax(1).max(1).values.mean())
        return {"weight": float(gmm.weights_[j]), "variance": float(gmm.component_variances()[j]),
                "logdet_per_dim": float(logdet) / gmm.n_features_in_,
                "realism": float(judge.realism(feats).mean()), "diversity": float(torch.pdist(feats).mean()),
                **{key: scores[key] for key in SCORES if key in scores}}

    # ---------------------------------------------------------------------------------------- outputs
    def analysis(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Spearman rho of the variance with each value of :data:`PARTS` (and realism), the critical |rho|,
        each part's status (holds, contradicted, inconclusive, undefined) and the verdict."""
        k = len(rows)
        critical = Z_95 / math.sqrt(max(k - 1, 1))
        variance = [r["variance"] for r in rows]
        parts = []
        for value, sign, claim in PARTS:
            if not all(r.get(value) is not None for r in rows):
                continue
            rho = spearman(variance, [r[value] for r in rows])
            status = ("undefined" if not np.isfinite(rho) else "inconclusive" if abs(rho) < critical else
                      "holds" if np.sign(rho) == sign else "contradicted")
            parts.append({"value": value, "sign": sign, "claim": claim, "rho": rho, "status": status})
        held = sum(p["status"] == "holds" for p in parts)
        against = sum(p["status"] == "contradicted" for p in parts)
        verdict = ("supported" if parts and held == len(parts) else "contradicted" if against and not held else
                   "partly supported" if held else "not supported")
        return {"k": k, "critical": critical, "parts": parts, "held": held, "verdict": verdict,
                "rho_realism": spearman(variance, [r["realism"] for r in rows])}

    def table(self, rows: list[dict[str, Any]]) -> Table:
        memo, sure = (all(key in r for r in rows) for key in ("copy_fraction", "confidence"))
        header = ["component", "weight", "variance", "log det / d", "precision", "realism",
                  *(["confidence"] if sure else []), "recall", "diversity",
                  *(["copy fraction", "nn-train ratio"] if memo else [])]
        body = [[r["component"], r["weight"], r["variance"], r["logdet_per_dim"], r["precision"], r["realism"],
                 *([r["confidence"]] if sure else []), r["recall"], r["diversity"],
                 *([r["copy_fraction"], r["nn_train_ratio"]] if memo else [])]
                for r in sorted(rows, key=lambda r: r["variance"])]
        s = self.settings
        notes = [f"one GMM ({s.k} components, {s.covariance} covariances) on the training codes; per component "
                 f"{s.n_per} decoded samples from that component alone, against the real evaluation images; rows "
                 "sorted by variance (mean per dimension); realism: mean realism score of Kynkäänniemi et al. "
                 "(>= 1 inside the real manifold); confidence: mean top class probability of the evaluation "
                 "classifier; diversity: mean pairwise feature distance of the component's "
                 "samples; copy fraction: share of samples nearer a training image than 5% of held-out images are"]
        return Table(header, body, notes, title="Realism, diversity and memorisation of each mixture component")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        panels = [v for v in ("copy_fraction", "diversity", "precision", "realism") if all(v in r for r in rows)]
        plt = pyplot()
        fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), dpi=100, squeeze=False)
        x = np.array([r["variance"] for r in rows])
        size = 200 * np.array([r["weight"] for r in rows]) / max(r["weight"] for r in rows)
        for ax, value in zip(axes[0], panels):
            y = np.array([r[value] for r in rows])
            ax.scatter(x, y, s=np.maximum(size, 4), alpha=0.6)
            ax.set_xscale("log")
            ax.set_xlabel("component variance (mean per dimension)")
            ax.set_ylabel(value.replace("_", " "))
            ax.set_title(f"Spearman rho = {fmt_number(spearman(x, y), 2)}", fontsize=9)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, folder / "components.png")
        return {"components.png": "One point per mixture component (area proportional to its weight): copy "
                                  "fraction, diversity, precision and mean realism of its decoded samples against "
                                  "its variance"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        a = self.analysis(rows)
        out = [f"{p['claim'][0].upper()}{p['claim'][1:]}: Spearman rho(variance, {p['value'].replace('_', ' ')}) = "
               f"{fmt_number(p['rho'], 2)} over {a['k']} components (expected sign {'+' if p['sign'] > 0 else '-'}; "
               f"|rho| >= {fmt_number(a['critical'], 2)} at the 5% level): {p['status']}." for p in a["parts"]]
        out.append(f"Verdict: the claim is {a['verdict']} ({a['held']} of {len(a['parts'])} parts hold); "
                   f"rho(variance, realism) = {fmt_number(a['rho_realism'], 2)}.")
        ranked = sorted(rows, key=lambda r: r["variance"])
        fifth = max(1, len(ranked) // 5)
        low, high = ranked[:fifth], ranked[-fifth:]
        values = [v for v in ("copy_fraction", "diversity", "precision") if all(v in r for r in rows)]
        means = "; ".join(f"{v.replace('_', ' ')} {fmt_number(np.mean([r[v] for r in low]))} vs "
                          f"{fmt_number(np.mean([r[v] for r in high]))}" for v in values)
        out.append(f"Lowest-variance fifth ({fifth} components, variance <= {fmt_number(low[-1]['variance'])}) vs "
                   f"highest fifth (>= {fmt_number(high[0]['variance'])}): {means}.")
        return out
