"""``latent-dim``: sample quality, recall and classes covered against the size of the latent code, with the
same training budget for every size ("latent too small: the model only produces a few kinds of images").

For every size of a grid one short training of the study's run with that ``latent_dim`` (see
:mod:`~latentatlas.studies.variants`), then: reconstruction MSE on the evaluation images, the active code
dimensions, and the Fréchet distance, precision, recall and classes covered of samples from a Gaussian
mixture fitted on the codes and of the model's prior samples, judged by the parent run's Judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentatlas.latent.samplers import GMM
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies import variants
from latentatlas.studies.base import Study, StudySettings, best, register
from latentatlas.studies.plots import panel_plot
from latentatlas.latent.samplers.gmm_em import COVARIANCE_TYPES
from latentatlas.validate import rule


@dataclass(frozen=True)
class LatentDimSettings(StudySettings):
    grid = ("latent_dims",)
    latent_dims: tuple[int, ...] = field(default=(2, 16, 64), metadata=rule(low=1, nonempty=True))
    epochs: int = field(default=2, metadata=rule(low=1))   # training budget of every variant
    limit: int | None = field(default=None, metadata=rule(low=1))   # images kept (all splits); None: the run's
    k: int = field(default=20, metadata=rule(low=1))       # mixture components
    covariance: str = field(default="full", metadata=rule(choices=COVARIANCE_TYPES))
    max_iter: int = field(default=100, metadata=rule(low=1))
    fit_codes: int | None = field(default=10000, metadata=rule(low=2))   # training codes the mixture sees
    n_samples: int = field(default=10000, metadata=rule(low=2))          # decoded samples per sampler
    fd_tolerance: float = field(default=0.1, metadata=rule(low=0))      # "near the best": FD <= (1 + tol) best


@register
class LatentDim(Study):
    name = "latent-dim"
    question = ("Is a small latent code the reason a model produces only a few kinds of images: how do sample "
                "quality, recall and classes covered change with the code size under one training budget?")
    Settings = LatentDimSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"latent_dim": int(d)} for d in sorted(set(self.settings.latent_dims))]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, Any]:
        s, d = self.settings, cell["latent_dim"]
        variants.check_trainable(ctx, self.name)
        session = variants.variant(ctx, self.name, f"dim-{d}", model={"latent_dim": d}, epochs=s.epochs,
                                   limit=s.limit)
        z = variants.subsample(variants.codes(session, "train"), s.fit_codes, ctx.generator(self.name, d, "fit"))
        gmm = GMM(k=min(s.k, z.shape[0]), covariance=s.covariance, max_iter=s.max_iter)
        gmm.fit(z, generator=ctx.generator(self.name, d, "gmm-fit"))
        out: dict[str, Any] = {"code_size": int(z.shape[1]), **variants.code_statistics(session),
                               **variants.training_summary(session)}
        if ctx.judge.class_shares is not None:
            out["n_classes"] = int((ctx.judge.class_shares > 0).sum())
        draws = gmm.sample(s.n_samples, generator=ctx.generator(self.name, d, "gmm"))
        out.update(variants.judge_codes(ctx, session, draws, "gmm"))
        prior = variants.prior_codes(session, s.n_samples, ctx.generator(self.name, d, "prior"))
        out.update(variants.judge_codes(ctx, session, prior, "prior"))
        return out

    # ---------------------------------------------------------------------------------------- outputs
    def table(self, rows: list[dict[str, Any]]) -> Table:
        rows = self.ordered(rows)
        near = {r["latent_dim"] for r in self.near_best(rows)}
        header = ["latent size", "active dims", "recon MSE", "GMM FD", "GMM precision / recall", "GMM classes",
                  "prior FD", "prior precision / recall", "prior classes", "train s", "near best FD"]
        body = [[r["latent_dim"], r["active_dims"], r["recon_mse"], r["gmm_frechet"],
                 f"{fmt_number(r['gmm_precision'])} / {fmt_number(r['gmm_recall'])}", self.classes(r, "gmm"),
                 r["prior_frechet"], f"{fmt_number(r['prior_precision'])} / {fmt_number(r['prior_recall'])}",
                 self.classes(r, "prior"), r["train_seconds"], "yes" if r["latent_dim"] in near else ""]
                for r in rows]
        s = self.settings
        fit = "all training codes" if s.fit_codes is None else f"at most {s.fit_codes} training codes"
        notes = [variants.training_note(s, "size"),
                 f"GMM: k={s.k} {s.covariance} covariances fitted on {fit} (posterior means); prior: the model's "
                 f"own prior; {s.n_samples} decoded samples per sampler judged by the parent run's Judge "
                 "(its extractor and real evaluation images); classes: classes covered by the samples as the "
                 "Judge's classifier labels them",
                 f"recon MSE on the variant's evaluation split; active dims: posterior means varying by more than "
                 f"{variants.ACTIVE_VARIANCE}; near best FD: GMM Fréchet distance within "
                 f"{fmt_number(100 * s.fd_tolerance)}% of the best"]
        return Table(header, body, notes, title="Sample quality and reconstruction against the latent size")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        panel_plot(folder / "latent-dim.png", self.ordered(rows), "latent_dim", [
            ("Fréchet distance", ["gmm_frechet", "prior_frechet"]), ("recall", ["gmm_recall", "prior_recall"]),
            ("classes covered", ["gmm_classes_covered", "prior_classes_covered"]),
            ("reconstruction MSE", ["recon_mse"])], xlabel="latent size", logx=True)
        return {"latent-dim.png": "Against the latent size (one training each, same budget): Fréchet distance, "
                                  "recall and classes covered of mixture and prior samples, and reconstruction MSE"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        rows = self.ordered(rows)
        top, near = best(rows, "gmm_frechet"), self.near_best(rows)
        small = near[0]
        out = [f"The best GMM samples come from size {top['latent_dim']} (Fréchet distance "
               f"{fmt_number(top['gmm_frechet'])}); the smallest size within "
               f"{fmt_number(100 * self.settings.fd_tolerance)}% "
               f"of it is {small['latent_dim']} ({fmt_number(small['gmm_frechet'])})."]
        for key, label in (("gmm_recall", "GMM recall"), ("gmm_classes_covered", "Classes covered by GMM samples"),
                           ("prior_recall", "Prior recall"), ("recon_mse", "Reconstruction MSE")):
            if any(r.get(key) is not None for r in rows):
                out.append(variants.trend_text(rows, "latent_dim", key, label=label, x_label="size") + ".")
        first = rows[0]
        if first.get("gmm_classes_covered") is not None:
            out.append(f"The smallest size ({first['latent_dim']}) covers {self.classes(first, 'gmm')} classes with "
                       f"GMM samples and {self.classes(first, 'prior')} with prior samples; the best-FD size "
                       f"({top['latent_dim']}) covers {self.classes(top, 'gmm')}.")
        prior_better = [r["latent_dim"] for r in rows if r["prior_frechet"] <= r["gmm_frechet"]]
        out.append("GMM samples beat prior samples at every size." if not prior_better else
                   f"Prior samples are as good as or better than GMM samples at size(s) {prior_better}.")
        return out

    def near_best(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows (by size) whose GMM Fréchet distance is within ``fd_tolerance`` of the best."""
        limit = best(rows, "gmm_frechet")["gmm_frechet"] * (1 + self.settings.fd_tolerance)
        return [r for r in self.ordered(rows) if r["gmm_frechet"] <= limit]

    @staticmethod
    def classes(row: dict[str, Any], prefix: str) -> str:
        covered = row.get(f"{prefix}_classes_covered")
        if covered is None:
            return ""
        return f"{covered} of {row['n_classes']}" if row.get("n_classes") else str(covered)

    @staticmethod
    def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: r["latent_dim"])
