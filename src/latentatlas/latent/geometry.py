"""Geometry diagnostics of a latent space: distances, axis walks, per-dimension KL and active units,
Gaussianity of the aggregate posterior, and re-projection drift.  Convex-hull membership lives in
:mod:`latentatlas.latent.hull` and is re-exported here."""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from scipy import stats

from latentatlas.latent.hull import hull_fraction, hull_fraction_vs_dim, in_hull, in_hull_linprog  # noqa: F401
from latentatlas.latent.interpolate import random_pairs
from latentatlas.models.base import Posterior
from latentatlas.rng import make_generator

log = logging.getLogger(__name__)

__all__ = ["active_units", "axis_walk", "distance_stats", "gmm_bic_curve", "hull_fraction", "hull_fraction_vs_dim",
           "in_hull", "in_hull_linprog", "kl_per_dim", "normality", "principal_directions", "reprojection_drift"]

Decoder = Callable[[torch.Tensor], torch.Tensor]
Encoder = Callable[[torch.Tensor], torch.Tensor]


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).double()


def distance_stats(z: torch.Tensor, x: torch.Tensor, *, n_pairs: int = 2000,
                   generator: torch.Generator | None = None) -> dict[str, object]:
    """Pairwise distances of random pairs and nearest-neighbour distances, in latent space (z (N, d))
    and in pixel space (x (N, ...)), and how the two correlate.
    -> dict with arrays 'pair_latent', 'pair_pixel', 'nn_latent', 'nn_pixel' (numpy) and scalar
    'pearson', 'spearman' (pairwise), 'nn_agreement' (fraction of codes whose latent NN is the pixel NN)."""
    if z.shape[0] != x.shape[0] or z.shape[0] < 3:
        raise ValueError(f"x: expected as many rows as z ({z.shape[0]}, at least 3), got {x.shape[0]}")
    zf, xf = _flat(z), _flat(x)
    n = zf.shape[0]
    i, j = random_pairs(n, n_pairs, generator=generator).unbind(1)
    pl = (zf[i] - zf[j]).norm(dim=1).numpy()
    pp = (xf[i] - xf[j]).norm(dim=1).numpy()
    dz, dx = torch.cdist(zf, zf), torch.cdist(xf, xf)
    dz.fill_diagonal_(float("inf"))
    dx.fill_diagonal_(float("inf"))
    nl, nl_idx = dz.min(dim=1)
    npx, np_idx = dx.min(dim=1)
    return {"pair_latent": pl, "pair_pixel": pp, "nn_latent": nl.numpy(), "nn_pixel": npx.numpy(),
            "pearson": float(stats.pearsonr(pl, pp)[0]), "spearman": float(stats.spearmanr(pl, pp)[0]),
            "nn_agreement": float((nl_idx == np_idx).double().mean())}


def principal_directions(z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k principal directions (k, d) (unit rows) of codes z (N, d) and their standard deviations (k,)."""
    zc = z.double() - z.double().mean(dim=0)
    _, s, vt = torch.linalg.svd(zc, full_matrices=False)
    k = min(k, vt.shape[0])
    return vt[:k].to(z.dtype), (s[:k] / max(1, z.shape[0] - 1) ** 0.5).to(z.dtype)


def axis_walk(z: torch.Tensor, directions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """A 'star' of codes: z (d,) moved along each direction (K, d) by each offset (S,). -> (K, S, d)."""
    z = z.reshape(1, 1, -1)
    if directions.ndim != 2 or directions.shape[1] != z.shape[2]:
        raise ValueError(f"directions: expected (K, {z.shape[2]}), got {tuple(directions.shape)}")
    return z + directions[:, None, :] * offsets.to(z.dtype)[None, :, None]


def kl_per_dim(z_mean: np.ndarray | torch.Tensor, z_logvar: np.ndarray | torch.Tensor | None) -> np.ndarray:
    """Mean over codes of KL(q(z_j|x) || N(0, 1)) per dimension, shape (d,); zeros-variance posteriors
    (an AE) have no KL and give NaN."""
    mu = torch.as_tensor(np.asarray(z_mean, dtype=np.float64))
    if z_logvar is None or np.size(z_logvar) == 0:
        return np.full(mu.shape[1], np.nan)
    lv = torch.as_tensor(np.asarray(z_logvar, dtype=np.float64))
    return Posterior(mu, lv).kl_per_dim().mean(dim=0).numpy()


def active_units(z_mean: np.ndarray | torch.Tensor, *, threshold: float = 0.01) -> tuple[np.ndarray, int]:
    """Activity Cov_x(E[z_j | x]) per dimension (d,) and the number above ``threshold`` (Burda et al. 2016)."""
    activity = np.asarray(z_mean, dtype=np.float64).var(axis=0)
    return activity, int((activity > threshold).sum())


def normality(z: np.ndarray | torch.Tensor, *, max_rows: int = 2000) -> dict[str, object]:
    """Is the aggregate posterior one Gaussian?  Per-dimension D'Agostino-Pearson p-values, Mardia's
    multivariate skewness and kurtosis with their p-values (under the Gaussian null)."""
    z = np.asarray(z, dtype=np.float64)[:max_rows]
    n, d = z.shape
    if n < 20:
        raise ValueError(f"z: expected at least 20 codes for normality tests, got {n}")
    per_dim = stats.normaltest(z, axis=0).pvalue
    zc = z - z.mean(axis=0)
    cov = np.cov(zc, rowvar=False, bias=True).reshape(d, d)
    prec = np.linalg.pinv(cov)
    m = zc @ prec @ zc.T                                            # (n, n) Mahalanobis products
    skew = float((m ** 3).sum() / n ** 2)
    kurt = float((np.diag(m) ** 2).mean())
    df = d * (d + 1) * (d + 2) / 6
    p_skew = float(stats.chi2.sf(n * skew / 6, df))
    z_kurt = (kurt - d * (d + 2)) / np.sqrt(8 * d * (d + 2) / n)
    p_kurt = float(2 * stats.norm.sf(abs(z_kurt)))
    return {"dim_pvalues": per_dim, "frac_dims_rejected": float((per_dim < 0.01).mean()),
            "mardia_skewness": skew, "mardia_skewness_p": p_skew, "mardia_kurtosis": kurt,
            "mardia_kurtosis_expected": float(d * (d + 2)), "mardia_kurtosis_p": p_kurt}


def gmm_bic_curve(z: np.ndarray | torch.Tensor, ks: list[int] | None = None, *, seed: int = 0,
                  covariance: str = "full") -> dict[str, list]:
    """BIC of Gaussian mixtures with k components for k in ks (lower is better; None: the grid of the gmm
    sampler's ``k=auto``); a single Gaussian is enough when k = 1 wins.  ``at_edge``: the best k is the
    largest tried (of two or more), so more components may fit better still.
    -> {'k': [...], 'bic': [...], 'best_k': int, 'at_edge': bool}."""
    from latentatlas.latent.samplers.gmm_select import auto_grid, select_k

    z = torch.as_tensor(np.asarray(z, dtype=np.float64))
    if ks is not None and not len(ks):
        raise ValueError("ks: expected at least one number of components, got []")
    ks = list(ks) if ks is not None else auto_grid(z.shape[0], z.shape[1])
    _, curve = select_k(z, ks, generator=make_generator(seed), val_fraction=0.0, covariance=covariance)
    ks = [row["k"] for row in curve]                  # sorted and without repeats, as select_k fitted them
    bics = [float(row["bic"]) for row in curve]
    best = int(ks[int(np.argmin(bics))])
    return {"k": ks, "bic": bics, "best_k": best, "at_edge": len(ks) > 1 and best == max(ks)}


@torch.no_grad()
def reprojection_drift(encode: Encoder, decode: Decoder, z: torch.Tensor, *, n_iter: int = 10) -> dict[str, np.ndarray]:
    """Iterate z <- encode(decode(z)) from codes z (B, d). -> 'step' (n_iter,): mean ||z_k+1 - z_k||,
    'from_start' (n_iter,): mean ||z_k+1 - z_0||, 'codes' (n_iter + 1, B, d)."""
    if n_iter < 1:
        raise ValueError(f"n_iter: expected >= 1, got {n_iter!r}")
    codes = [z]
    for _ in range(n_iter):
        codes.append(encode(decode(codes[-1])))
    c = torch.stack(codes).double()
    step = (c[1:] - c[:-1]).norm(dim=2).mean(dim=1).numpy()
    start = (c[1:] - c[:1]).norm(dim=2).mean(dim=1).numpy()
    return {"step": step, "from_start": start, "codes": c.float().numpy()}
