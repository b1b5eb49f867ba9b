"""Fréchet distance between two Gaussians, computed stably without a matrix square root of S1 S2.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)

tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2, which equal those of the
symmetric PSD matrix F^T S2 F for any factor F F^T = S1 (Cholesky, or V sqrt(Lambda) from a
symmetric eigen-decomposition when S1 is singular).  All in float64 with symmetric solvers: no
imaginary parts, and fewer samples than dimensions is fine.  It runs where the real statistics are (a GPU's
solvers when they are on one; the fake statistics are moved there).  When S1 is reused (a fixed reference)
pass a :class:`FrechetReference` to factor it once.

The distance between two finite samples is biased upward, by about b / N for N generated images
(Chong & Forsyth, CVPR 2020): :func:`frechet_infinity` fits that line over subsets and extrapolates
to N -> infinity, so samplers scored with different N, or close to each other, compare fairly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from latentatlas.metrics.features import features_to_stats

FD_INF_POINTS = 15       # subset sizes on the line (Chong & Forsyth's 15)
FD_INF_MIN_SHARE = 0.1   # the smallest subset is this share of the images (their 5,000 of 50,000) ...
FD_INF_MIN_PER_DIM = 2   # ... and at least this many images per feature dimension


def _as_stats(stats: Any, param: str, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu (D,), sigma (D, D)) as float64 on ``device`` (default: where mu is; the CPU for Apple's MPS)."""
    if hasattr(stats, "mu") and hasattr(stats, "sigma"):
        stats = (stats.mu, stats.sigma)
    if not isinstance(stats, (tuple, list)) or len(stats) != 2:
        raise TypeError(f"{param}: expected (mu, sigma) or an object with .mu and .sigma, got {type(stats).__name__}")
    mu = torch.as_tensor(np.asarray(stats[0]) if not isinstance(stats[0], torch.Tensor) else stats[0])
    sigma = torch.as_tensor(np.asarray(stats[1]) if not isinstance(stats[1], torch.Tensor) else stats[1])
    device = mu.device if device is None else device
    device = torch.device("cpu") if device.type == "mps" else device      # MPS has no float64
    mu, sigma = (t.detach().to(device=device, dtype=torch.float64) for t in (mu, sigma))
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"{param}: expected mu (D,) and sigma (D, D), got {tuple(mu.shape)} and {tuple(sigma.shape)}")
    if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise ValueError(f"{param}: statistics contain NaN or inf")
    return mu, sigma


def _sym(m: torch.Tensor) -> torch.Tensor:
    return (m + m.T) * 0.5


def psd_factor(sigma: torch.Tensor) -> torch.Tensor:
    """A factor F (D, r) with F F^T = sigma for a PSD sigma (D, D).

    Dimensions of zero variance (e.g. always-black border pixels) are dropped first (their rows of F
    are zero).  Cholesky of the rest when it succeeds (its entries are bounded by sqrt(diag(sigma)),
    so it is stable even for nearly singular sigma); otherwise F = V sqrt(max(lambda, 0)) from the
    symmetric eigen-decomposition."""
    sym = _sym(sigma)
    keep = torch.nonzero(sym.diagonal() > 0).flatten()
    chol, info = torch.linalg.cholesky_ex(sym[keep][:, keep])
    if int(info) == 0:
        factor = torch.zeros(sym.shape[0], keep.numel(), dtype=sym.dtype, device=sym.device)
        factor[keep] = chol
        return factor
    evals, evecs = torch.linalg.eigh(sym)
    return evecs * evals.clamp_min(0).sqrt()


class FrechetReference:
    """Reference statistics with their factor precomputed: ``frechet(ref, fake)`` then skips a step."""

    def __init__(self, stats: Any) -> None:
        self.mu, self.sigma = _as_stats(stats, "real_stats")
        self.factor = psd_factor(self.sigma)


def trace_sqrt_product(factor1: torch.Tensor, s2: torch.Tensor) -> float:
    """tr sqrt(S1 S2) given F with F F^T = S1: the eigenvalues of S1 S2 are those of the symmetric PSD
    matrix F^T S2 F; sum their square roots (round-off negatives clipped to 0)."""
    m = _sym(factor1.T @ s2 @ factor1)
    return float(torch.linalg.eigvalsh(m).clamp_min(0).sqrt().sum())


def frechet(real_stats: Any, fake_stats: Any) -> float:
    """Fréchet distance between N(mu1, S1) (real) and N(mu2, S2) (fake).

    Each argument is (mu (D,), sigma (D, D)) as tensors or arrays, an object with ``.mu``/``.sigma``
    (e.g. :class:`~latentatlas.metrics.features.Reference`), or a :class:`FrechetReference`.
    """
    if isinstance(real_stats, FrechetReference):
        mu1, s1, factor = real_stats.mu, real_stats.sigma, real_stats.factor
    else:
        mu1, s1 = _as_stats(real_stats, "real_stats")
        factor = None
    mu2, s2 = _as_stats(fake_stats, "fake_stats", mu1.device)
    if mu1.shape != mu2.shape:
        raise ValueError(f"fake_stats: dimension {mu2.shape[0]} differs from real_stats' {mu1.shape[0]}")
    if factor is None:
        factor = psd_factor(s1)
    diff = mu1 - mu2
    value = float(diff @ diff) + float(torch.trace(s1)) + float(torch.trace(s2)) \
        - 2.0 * trace_sqrt_product(factor, s2)
    return max(value, 0.0)


def frechet_infinity_sizes(n: int, dim: int) -> np.ndarray:
    """The subset sizes (FD_INF_POINTS,) evenly spaced from max(n / 10, 2 dim) to n; ValueError when
    that range is shorter than half of n (too few images for the feature dimension to extrapolate)."""
    smallest = max(int(n * FD_INF_MIN_SHARE), FD_INF_MIN_PER_DIM * dim)
    if smallest > n // 2:
        raise ValueError(f"fake_features: FD-infinity needs at least {2 * FD_INF_MIN_PER_DIM * dim} images for "
                         f"{dim}-d features, got {n}")
    return np.unique(np.linspace(smallest, n, FD_INF_POINTS).astype(np.int64))


def frechet_infinity(real_stats: Any, fake_features: torch.Tensor, *, generator: torch.Generator,
                     sizes: np.ndarray | None = None) -> dict:
    """FD-infinity: the Fréchet distance extrapolated to infinitely many generated images.

    The Fréchet distance of random subsets (without replacement) of ``fake_features`` (N, D) at the sizes
    of :func:`frechet_infinity_sizes` (or ``sizes``), then the least-squares line FD(n) = FD_inf + slope / n.  Returns
    ``{"frechet_inf": FD_inf, "frechet_inf_slope": slope}``; the reference's own finite size is not
    extrapolated (it is the same for every sampler scored against it).  An extrapolation, not a distance:
    near a true distance of 0 it can come out slightly negative, and the line's noise (from the small
    subsets) makes it vary more between draws than the distance of all N images does."""
    fake = torch.as_tensor(fake_features)
    if fake.ndim != 2:
        raise ValueError(f"fake_features: expected (N, D), got shape {tuple(fake.shape)}")
    sizes = frechet_infinity_sizes(fake.shape[0], fake.shape[1]) if sizes is None else sizes
    ref = real_stats if isinstance(real_stats, FrechetReference) else FrechetReference(real_stats)
    values = [frechet(ref, features_to_stats(fake[torch.randperm(fake.shape[0], generator=generator)[:n]]))
              for n in sizes]
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(values), 1)
    return {"frechet_inf": float(intercept), "frechet_inf_slope": float(slope)}
