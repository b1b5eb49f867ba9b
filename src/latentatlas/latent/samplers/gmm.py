"""``gmm`` and ``gaussian``: Gaussian mixtures fitted by EM in torch (see gmm_em.py for the algorithm).

``GMM(k=50, covariance="diag").fit(z)`` follows scikit-learn's GaussianMixture (same M-step, the same
``10 eps`` added to component masses, the same convergence test on the mean log-likelihood) with
k-means++ (+ Lloyd) initialisation (gmm_kmeans.py), restarts, and adaptive jitter that keeps every
covariance positive definite (``reg_added_`` reports it).  ``dtype``: "mixed" (default) finds the pairs
of codes and components that matter with a float32 screen and computes them in float64 (gmm_mixed.py):
float64 results, up to responsibilities below 1e-30, at about float32 speed (small fits, under
MIXED_MIN_WORK = n k p, run the plain float64 EM, which is then faster, and so do fits whose screen keeps
more than MIXED_MAX_SHARE of the pairs, as on overlapping real codes; on a GPU, where the screen's
per-block work costs more than the float64 products it saves, "mixed" is the float64 EM); "float64" is the plain
float64 EM, scikit-learn's exact trajectory; "float32" the plain EM in float32 (fastest for a few
iterations, loses accuracy on badly conditioned covariances); parameters are float64 except for the
latter.  ``describe()`` reports each component's effective number of codes and how much of its covariance
the regularisation sets, and warns when components hold fewer codes than dimensions (gmm_diagnostics.py).
``k="auto"`` or a list (``k=5|10|20`` in a spec) selects k (see gmm_select.py); ``hierarchical=true``
grows the mixture by splitting components.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from latentatlas.latent.samplers import gmm_diagnostics as diagnostics
from latentatlas.latent.samplers import gmm_em as em
from latentatlas.latent.samplers import gmm_kmeans as kmeans
from latentatlas.latent.samplers import gmm_mixed as mixed
from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler, default_generator
from latentatlas.rng import choice, randn, to_device
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

INIT_MAX_POINTS = 100_000   # k-means++ seeding and Lloyd iterations run on at most this many codes
KMEANS_ITER = 100           # at most this many Lloyd iterations after k-means++ seeding,
KMEANS_TOL = 1e-4           # stopped when the centers move less than this (scikit-learn's test)
MIXED_MIN_WORK = 5e7        # dtype="mixed" runs the plain float64 EM below this n * k * p (its overhead)
MIXED_MAX_SHARE = 0.1       # ... and hands over to it when a pass computes more of the pairs exactly
AUTO_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


def parse_k(value: Any) -> int | list[int] | None:
    """k as an int, or a grid (list) for selection; None means the automatic grid."""
    if isinstance(value, str):
        if value == "auto":
            return None
        try:
            value = [int(v) for v in value.split("|")]
        except ValueError:
            raise ValueError(f"k: expected an integer, 'auto' or a grid like '5|10|20', got {value!r}") from None
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("k: expected a non-empty grid, got []")
        for v in value:
            check_number("k", v, low=1, integer=True)
        return sorted(set(int(v) for v in value))
    check_number("k", value, low=1, integer=True)
    return int(value)


@SAMPLERS.register("gmm")
class GMM(LatentSampler):
    """Gaussian mixture. Fitted: ``weights_ (k,)``, ``means_ (k, d)``, ``covariances_`` (full (k, d, d),
    diag (k, d), tied (d, d), spherical (k,)), ``reg_added_ (k,)``, ``n_iter_``, ``converged_``,
    ``lower_bound_`` (mean log-likelihood of the last E-step)."""

    name = "gmm"
    min_codes = 2
    defaults = dict(k=10, covariance="full", n_init=1, init="kmeans", max_iter=100, tol=1e-3, reg_covar=1e-6,
                    dtype="mixed", criterion="bic", val_fraction=0.2, hierarchical=False, max_memory_gib=2.0,
                    seed=0)

    def _check_params(self) -> None:
        parse_k(self.k)
        check_choice("covariance", self.covariance, em.COVARIANCE_TYPES)
        check_choice("init", self.init, ("kmeans", "kmeans++"))
        check_choice("dtype", self.dtype, ("mixed", "float64", "float32"))
        check_choice("criterion", self.criterion, ("bic", "aic", "heldout"))
        check_choice("hierarchical", self.hierarchical, (True, False))
        check_number("n_init", self.n_init, low=1, integer=True)
        check_number("max_iter", self.max_iter, low=1, integer=True)
        check_number("tol", self.tol, low=0)
        check_number("reg_covar", self.reg_covar, low=0)
        check_number("val_fraction", self.val_fraction, low=0)
        if self.val_fraction >= 1:
            raise ValueError(f"val_fraction: expected a value in [0, 1), got {self.val_fraction!r}")
        check_number("max_memory_gib", self.max_memory_gib, low=0, strict=True)
        check_number("seed", self.seed, integer=True)

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, z: torch.Tensor, generator: torch.Generator | None, init: dict | None = None) -> None:
        g = default_generator(generator, self.seed)
        k = parse_k(self.k)
        if not isinstance(k, int) or self.hierarchical:
            from latentatlas.latent.samplers import gmm_select
            best = gmm_select.fit_selected(self, z, k, g)
            for key, value in vars(best).items():
                if key.endswith("_") and not key.startswith("_"):
                    setattr(self, key, value)
            return
        n = z.shape[0]
        if k > n:
            raise ValueError(f"k: expected at most the number of codes ({n}), got {k}")
        x, shift = self._centred(z)
        screened = (self.dtype == "mixed" and x.device.type == "cpu"   # a GPU runs the float64 EM faster
                    and n * k * em.n_features(x.shape[1], self.covariance) >= MIXED_MIN_WORK)
        rows, cache = self._batch_rows(x, k, 4 if screened else x.element_size())
        batches = None if screened else em.FeatureBatches(x, self.covariance, rows, cache)
        best = None
        for _ in range(1 if init is not None else self.n_init):
            given = self._mixture_from(init, shift, k) if init is not None else None
            centers = given.means if given is not None else self._initial_centers(x, k, rows, g)
            labels = kmeans.nearest(x, centers, rows)
            if batches is None:
                blocks = mixed.Blocks(x, labels, k, self.covariance, rows, cache)
                stats = None if given is not None else mixed.hard_stats(blocks, k)
                e_pass = _ScreenedPass(self, blocks, x, k)
            else:
                stats = None if given is not None else em.hard_stats(batches, labels, k)
                e_pass = lambda W, _, batches=batches: em.em_pass(batches, W)   # noqa: E731
            mix = given if stats is None else em.m_step(stats, self.covariance, self.reg_covar)
            result = em.run_em(e_pass, n, mix, self.covariance, self.reg_covar, self.max_iter, self.tol)
            if batches is None and e_pass.plain is not None:   # the screen did not pay: later restarts skip it
                batches = e_pass.plain
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        self._set_result(best, shift)

    def _centred(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = z.to(torch.float64 if self.dtype == "mixed" else getattr(torch, self.dtype))
        shift = x.mean(0)
        return x - shift, shift

    def _batch_rows(self, x: torch.Tensor, k: int, cached_item: int) -> tuple[int, bool]:
        """Rows per batch sized by ``max_memory_gib``, and whether the feature map (``cached_item`` bytes per
        number) fits in half of it and is cached."""
        n, d = x.shape
        p, item = em.n_features(d, self.covariance), x.element_size()
        budget = self.max_memory_gib * 2**30
        rows = int(max(64, budget / 8 / ((p + 2 * k) * item)))
        return rows, n * p * cached_item <= budget / 2

    def _batches(self, x: torch.Tensor, k: int, *, cache: bool) -> em.FeatureBatches:
        rows, fits = self._batch_rows(x, k, x.element_size())
        return em.FeatureBatches(x, self.covariance, rows, cache and fits)

    def _initial_centers(self, x: torch.Tensor, k: int, rows: int, g: torch.Generator) -> torch.Tensor:
        """k-means++ seeds, then (init="kmeans") Lloyd iterations, on at most INIT_MAX_POINTS codes: (k, d)
        float32."""
        n = x.shape[0]
        sub = x if n <= INIT_MAX_POINTS else x[to_device(torch.randperm(n, generator=g)[:INIT_MAX_POINTS], x.device)]
        sub = sub.float()
        centers = kmeans.kmeans_plusplus(sub, k, generator=g)
        if self.init == "kmeans":
            centers = kmeans.lloyd(sub, centers, KMEANS_ITER, KMEANS_TOL, rows)
        return centers

    def _mixture_from(self, init: dict, shift: torch.Tensor, k: int) -> em.Mixture:
        """Initial parameters given by the caller (weights, means, covariances in sklearn shapes)."""
        d = shift.shape[0]
        shapes = {"weights": (k,), "means": (k, d), "covariances": {
            "full": (k, d, d), "diag": (k, d), "tied": (d, d), "spherical": (k,)}[self.covariance]}
        if not isinstance(init, dict) or set(init) != set(shapes):
            raise ValueError(f"init: expected a dict with keys {sorted(shapes)}, got {init!r:.200}")
        out = {}
        for key, shape in shapes.items():
            value = torch.as_tensor(init[key]).to(shift.device, shift.dtype)
            if tuple(value.shape) != shape:
                raise ValueError(f"init[{key!r}]: expected shape {shape}, got {tuple(value.shape)}")
            out[key] = value
        return em.Mixture(out["weights"] / out["weights"].sum(), out["means"] - shift, out["covariances"])

    def _set_result(self, result: em.EMResult, shift: torch.Tensor) -> None:
        mix = result.mixture
        self.n_components_ = int(mix.weights.shape[0])
        self.weights_, self.means_, self.covariances_ = mix.weights, mix.means + shift, mix.covariances
        self.shift_, self.logprob_weights_ = shift, result.W
        self.reg_added_ = result.added
        self.lower_bound_, self.n_iter_, self.converged_ = result.lower_bound, result.n_iter, result.converged
        self.history_ = [float(v) for v in result.history]
        if bool((result.added > 0).any()):
            log.warning("gmm: added diagonal jitter to %d of %d covariances to keep them positive definite "
                        "(largest %.3g, beyond reg_covar=%g)", int((result.added > 0).sum()),
                        self.n_components_, float(result.added.max()), self.reg_covar)
        warning = self._starvation_warning()
        if warning:
            log.warning("gmm: %s", warning)
        if not result.converged and self.tol > 0:
            log.info("gmm: EM stopped after max_iter=%d iterations without converging (tol=%g)",
                     self.max_iter, self.tol)

    # -- scoring ---------------------------------------------------------------------------------
    def _logprob(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Per batch: (b, k) log w_k + log N(z | k)."""
        x = self._check_query(z, self.logprob_weights_.dtype) - self.shift_
        return [F @ self.logprob_weights_.T for F in self._batches(x, self.n_components_, cache=False)]

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of each code: (n,) float64 (float32 when dtype="float32")."""
        return torch.cat([torch.logsumexp(lp, 1) for lp in self._logprob(z)])

    def score(self, z: torch.Tensor) -> float:
        """Mean log-likelihood of ``z``."""
        return float(self.score_samples(z).mean())

    def predict_proba(self, z: torch.Tensor) -> torch.Tensor:
        """Responsibilities (n, k)."""
        return torch.cat([torch.softmax(lp, 1) for lp in self._logprob(z)])

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """Most likely component of each code: (n,) long."""
        return torch.cat([lp.argmax(1) for lp in self._logprob(z)])

    def n_parameters(self) -> int:
        self._check_fitted()
        k, d = self.n_components_, self.n_features_in_
        cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "tied": d * (d + 1) // 2, "spherical": k}
        return cov[self.covariance] + k * d + k - 1

    def bic(self, z: torch.Tensor) -> float:
        """Bayesian information criterion on ``z`` (lower is better)."""
        return -2 * float(self.score_samples(z).sum()) + self.n_parameters() * math.log(z.shape[0])

    def aic(self, z: torch.Tensor) -> float:
        """Akaike information criterion on ``z`` (lower is better)."""
        return -2 * float(self.score_samples(z).sum()) + 2 * self.n_parameters()

    def component_variances(self) -> torch.Tensor:
        """Mean variance per dimension of each component: (k,)."""
        self._check_fitted()
        return diagnostics.mean_variances(self.covariances_, self.covariance, self.n_components_)

    def component_counts(self) -> torch.Tensor:
        """Effective number of codes of each component, ``weight_k * n``: (k,) float64."""
        self._check_fitted()
        return self._counts()

    def _counts(self) -> torch.Tensor:
        return self.weights_.double().cpu() * self.n_codes_

    def _diagnostics(self, variances: torch.Tensor | None = None) -> dict[str, Any]:
        """component_diagnostics of the fitted state (usable inside ``_fit``, before the fit is marked done);
        ``variances``: the (k,) mean variances when the caller has them already."""
        if variances is None:
            variances = diagnostics.mean_variances(self.covariances_, self.covariance, self.n_components_)
        return diagnostics.component_diagnostics(self._counts(), variances, self.reg_covar, self.reg_added_,
                                                 self.covariance, int(self.means_.shape[1]))

    def _starvation_warning(self, found: dict[str, Any] | None = None) -> str | None:
        found = found or self._diagnostics()
        return diagnostics.starvation_warning(found["summary"], self.n_components_, int(self.means_.shape[1]),
                                              self.reg_covar)

    # -- sampling --------------------------------------------------------------------------------
    def _sample(self, n: int, generator: torch.Generator | None, component: int | None = None) -> torch.Tensor:
        k, d = self.n_components_, self.n_features_in_
        if component is None:
            comp = choice(self.weights_, k, n, generator=generator)
        else:
            check_number("component", component, low=0, integer=True)
            if component >= k:
                raise ValueError(f"component: expected an index in [0, {k}), got {component}")
            comp = torch.full((n,), int(component), dtype=torch.long)
        eps = randn((n, d), generator=generator, device=self.codes_device, dtype=self.means_.dtype)
        comp = comp.to(self.codes_device)
        cov = self.covariances_
        if self.covariance == "full":   # rows sorted by component: two reads on a GPU, not two a component
            used, counts = torch.unique(comp, return_counts=True)
            L = torch.linalg.cholesky(cov[used])   # only the components drawn from (one for component=)
            order = torch.argsort(comp, stable=True)
            blocks = eps[order].split(counts.tolist())
            out = torch.empty_like(eps)
            out[order] = torch.cat([block @ factor.T for block, factor in zip(blocks, L)])
        elif self.covariance == "tied":
            out = eps @ torch.linalg.cholesky(cov).T
        else:
            std = cov.sqrt() if self.covariance == "diag" else cov.sqrt()[:, None].expand(k, d)
            out = eps * std[comp]
        return out + self.means_[comp]

    def _describe(self) -> dict[str, Any]:
        var = self.component_variances()
        found = self._diagnostics(var)
        info = {"k": self.n_components_, "covariance": self.covariance, "reg_covar": self.reg_covar,
                "reg_added_max": float(self.reg_added_.max()), "n_jittered": int((self.reg_added_ > 0).sum()),
                "n_iter": self.n_iter_, "converged": self.converged_, "mean_log_likelihood": self.lower_bound_,
                **found["summary"],
                "components": [{"weight": float(w), "variance": float(v), "n_k": n, "reg_share": r, "jitter": float(a)}
                               for w, v, n, r, a in zip(self.weights_, var, found["n_k"], found["reg_share"],
                                                        self.reg_added_)]}
        warning = self._starvation_warning(found)
        if warning:
            info["warnings"] = [warning]
        for key in ("selection_", "selection_criterion_"):
            if hasattr(self, key):
                info[key.rstrip("_")] = getattr(self, key)
        return info


@SAMPLERS.register("gaussian")
class Gaussian(GMM):
    """One full-covariance Gaussian fitted to the codes (maximum likelihood, plus ``reg_covar``)."""

    name = "gaussian"
    defaults = dict(reg_covar=1e-6, dtype="float64", max_memory_gib=2.0)
    k, covariance, n_init, init, max_iter, tol, criterion = 1, "full", 1, "kmeans", 2, 1e-9, "bic"
    val_fraction, hierarchical, seed = 0.0, False, 0


class _ScreenedPass:
    """``e_pass(W, mix)`` of the mixed EM, handing over to the plain float64 EM (same result; its batches
    are kept in ``plain``) once a pass computes more than MIXED_MAX_SHARE of the (code, component) pairs
    exactly, judged on its first tenth of the codes (that pass is then done in float64): where components
    overlap, as on real codes (74 % on MNIST AE codes, d=16, k=100), the screen prunes little and its
    per-block work costs several times the float64 GEMMs; on separated clusters it is 3-5 %."""

    def __init__(self, gmm: GMM, blocks: mixed.Blocks, x: torch.Tensor, k: int) -> None:
        self.gmm, self.blocks, self.x, self.k = gmm, blocks, x, k
        self.plain: em.FeatureBatches | None = None

    def __call__(self, W: torch.Tensor, mix: em.Mixture) -> tuple[torch.Tensor, torch.Tensor]:
        if self.plain is not None:
            return em.em_pass(self.plain, W)
        out = mixed.em_pass(self.blocks, W, mix, covariance=self.gmm.covariance, give_up_above=MIXED_MAX_SHARE)
        if out is None or self.blocks.exact_share > MIXED_MAX_SHARE:
            log.debug("gmm: %.0f %% of the pairs computed exactly; plain float64 EM from here",
                      100 * self.blocks.exact_share)
            self.plain, self.blocks = self.gmm._batches(self.x, self.k, cache=True), None
        return em.em_pass(self.plain, W) if out is None else out
