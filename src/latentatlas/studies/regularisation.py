"""``regularisation``: does the VAE's KL term make the aggregate posterior one Gaussian that a mixture cannot
split?

For every beta of a grid (0: a plain autoencoder) one short training of the study's run with that beta
(see :mod:`~latentatlas.studies.variants`), then on its codes (posterior means): the number of mixture
components BIC selects over a grid of k, the held-out log-likelihood gain per code of that mixture over one
full-covariance Gaussian, the KL term and active dimensions, and the sample quality of the model's prior
samples against the selected mixture's samples, judged by the parent run's Judge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentatlas.latent.samplers import Gaussian, select_k
from latentatlas.runs.tables import Table, fmt_number
from latentatlas.studies import variants
from latentatlas.studies.base import Study, StudySettings, register
from latentatlas.studies.plots import panel_plot
from latentatlas.latent.samplers.gmm_em import COVARIANCE_TYPES
from latentatlas.validate import rule


@dataclass(frozen=True)
class RegularisationSettings(StudySettings):
    grid = ("betas",)
    betas: tuple[float, ...] = field(default=(0.0, 0.1, 0.5, 1.0, 2.0, 4.0),   # KL weights; 0: an AE (family ae)
                                     metadata=rule(low=0, nonempty=True))
    epochs: int = field(default=2, metadata=rule(low=1))   # training budget of every variant
    limit: int | None = field(default=None, metadata=rule(low=1))   # images kept (all splits); None: the run's
    ks: tuple[int, ...] = field(default=(1, 2, 5, 10, 20, 50), metadata=rule(low=1, nonempty=True))   # BIC's grid
    covariance: str = field(default="full", metadata=rule(choices=COVARIANCE_TYPES))
    max_iter: int = field(default=100, metadata=rule(low=1))
    fit_codes: int | None = field(default=None, metadata=rule(low=2))   # training codes the mixtures see
    n_samples: int = field(default=10000, metadata=rule(low=2))         # decoded samples per sampler


def variant_name(beta: float) -> str:
    return f"beta-{beta:g}"


def betas(rows: list[dict[str, Any]]) -> str:
    """The betas of ``rows`` as text: ``"0, 0.1, 4"``."""
    return ", ".join(fmt_number(r["beta"]) for r in rows)


@register
class Regularisation(Study):
    name = "regularisation"
    question = ("Does the VAE's KL term make the aggregate posterior one Gaussian that a mixture cannot split: "
                "how do BIC's number of components, the mixture's likelihood gain over one Gaussian and the "
                "mixture's advantage over prior samples change with beta?")
    Settings = RegularisationSettings

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        return [{"beta": float(b)} for b in sorted(set(float(b) for b in self.settings.betas))]

    def run_cell(self, ctx, cell: dict[str, Any]) -> dict[str, Any]:
        s, beta = self.settings, cell["beta"]
        variants.check_trainable(ctx, self.name, families=("ae", "vae"))
        model = {"family": "ae"} if beta == 0 else {"family": "vae", "kl_weight": beta}
        session = variants.variant(ctx, self.name, variant_name(beta), model=model, epochs=s.epochs, limit=s.limit)
        z = variants.subsample(variants.codes(session, "train"), s.fit_codes, ctx.generator(self.name, beta, "fit"))
        held = variants.heldout_codes(session)
        gmm, _ = select_k(z, list(s.ks), criterion="bic", generator=ctx.generator(self.name, beta, "select"),
                          covariance=s.covariance, max_iter=s.max_iter)
        gaussian = Gaussian().fit(z)
        gmm_ll, gaussian_ll = float(gmm.score_samples(held).mean()), float(gaussian.score_samples(held).mean())
        out: dict[str, Any] = {"bic_k": int(gmm.n_components_), "gmm_heldout_loglik": gmm_ll,
                               "gaussian_heldout_loglik": gaussian_ll, "loglik_gain": gmm_ll - gaussian_ll,
                               **variants.code_statistics(session), **variants.training_summary(session)}
        prior = variants.prior_codes(session, s.n_samples, ctx.generator(self.name, beta, "prior"))
        out.update(variants.judge_codes(ctx, session, prior, "prior"))
        draws = gmm.sample(s.n_samples, generator=ctx.generator(self.name, beta, "gmm"))
        out.update(variants.judge_codes(ctx, session, draws, "gmm"))
        out["frechet_gain"] = out["prior_frechet"] - out["gmm_frechet"]
        return out

    # ---------------------------------------------------------------------------------------- outputs
    def table(self, rows: list[dict[str, Any]]) -> Table:
        header = ["β", "model", "KL nats/code", "active dims", "recon MSE", "BIC k", "log-lik gain nats/code",
                  "prior FD", "GMM FD", "FD prior − GMM", "prior precision / recall", "GMM precision / recall"]
        body = [[r["beta"], "AE" if r["beta"] == 0 else "VAE", r["kl"], r["active_dims"], r["recon_mse"], r["bic_k"],
                 r["loglik_gain"], r["prior_frechet"], r["gmm_frechet"], r["frechet_gain"],
                 f"{fmt_number(r['prior_precision'])} / {fmt_number(r['prior_recall'])}",
                 f"{fmt_number(r['gmm_precision'])} / {fmt_number(r['gmm_recall'])}"] for r in self.ordered(rows)]
        s = self.settings
        fit = "all training codes" if s.fit_codes is None else f"{s.fit_codes} training codes"
        notes = [variants.training_note(s, "β"),
                 f"BIC over k in {list(s.ks)} ({s.covariance} covariances, fitted on {fit} (posterior means), "
                 "BIC on an 80 % split, the chosen k refitted); log-likelihood gain: mean held-out log-likelihood "
                 "per code of that mixture minus that of one full-covariance Gaussian, on the validation codes",
                 "KL: mean KL(q(z|x) || N(0, I)) per held-out code (none for the AE); active dims: dimensions whose "
                 f"posterior mean varies by more than {variants.ACTIVE_VARIANCE} over held-out images",
                 f"{s.n_samples} decoded samples per sampler (the model's N(0, I) prior, also for the AE; the "
                 "BIC-selected mixture) judged by the parent run's Judge against its real evaluation images"]
        return Table(header, body, notes, title="Latent structure and sample quality against the KL weight β")

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        panel_plot(folder / "regularisation.png", self.ordered(rows), "beta", [
            ("BIC-selected k", ["bic_k"]), ("held-out log-lik gain (nats/code)", ["loglik_gain"]),
            ("Fréchet distance", ["prior_frechet", "gmm_frechet"]), ("recall", ["prior_recall", "gmm_recall"]),
            ("KL (nats/code)", ["kl"])], xlabel="β (0: autoencoder)")
        return {"regularisation.png": "Against the KL weight β (one training each): the k BIC selects, the "
                                      "held-out log-likelihood gain of that mixture over one Gaussian, Fréchet "
                                      "distance and recall of prior and mixture samples, and the KL term"}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        rows = self.ordered(rows)
        top, fewest = max(self.settings.ks), min(r["bic_k"] for r in rows)
        k_line = variants.trend_text(rows, "beta", "bic_k", label="BIC's k", x_label="β")
        edge = [r for r in rows if r["bic_k"] == top]
        if edge:
            k_line += f"; at β = {betas(edge)} it is the largest k of the grid ({top}): BIC might take more"
        at_fewest = betas([r for r in rows if r["bic_k"] == fewest])
        out = [k_line + ".",
               f"One Gaussian suffices (BIC k=1) at β = {at_fewest}." if fewest == 1 else
               f"At no β does BIC pick one Gaussian: the fewest components are k={fewest} (β = {at_fewest}).",
               variants.trend_text(rows, "beta", "loglik_gain", label="The mixture's held-out log-likelihood gain "
                                   "over one Gaussian (nats/code)", x_label="β") + "."]
        wins = [r for r in rows if r["frechet_gain"] > 0]
        loses = [r for r in rows if r["frechet_gain"] <= 0]
        if wins:
            biggest = max(wins, key=lambda r: r["frechet_gain"])
            out.append("The mixture's samples beat the prior's (lower Fréchet distance) at β = "
                       + ", ".join(f"{fmt_number(r['beta'])} (by {fmt_number(r['frechet_gain'])}, "
                                   f"{fmt_number(100 * r['frechet_gain'] / r['prior_frechet'], 2)}%)" for r in wins)
                       + f"; most at β = {fmt_number(biggest['beta'])}."
                       + (f" The prior is as good or better at β = {betas(loses)}." if loses else ""))
        else:
            out.append("The prior's samples are as good as or better than the mixture's at every β.")
        out.append("Precision / recall, prior -> mixture: " + "; ".join(
            f"β={fmt_number(r['beta'])}: {fmt_number(r['prior_precision'])} / {fmt_number(r['prior_recall'])} -> "
            f"{fmt_number(r['gmm_precision'])} / {fmt_number(r['gmm_recall'])}" for r in rows) + ".")
        vae = [r for r in rows if r.get("kl") is not None]
        if vae:
            out.append(variants.trend_text(vae, "beta", "kl", label="The KL term (nats/code)", x_label="β")
                       + f"; active dimensions {vae[0]['active_dims']} -> {vae[-1]['active_dims']}.")
        return out

    @staticmethod
    def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: r["beta"])
