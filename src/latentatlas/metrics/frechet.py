"""Fréchet distance between two Gaussians, computed stably without a matrix square root of S1 S2.

    d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)

tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2, which equal those of the
symmetric PSD matrix F^T S2 F for any factor F F^T = S1 (Cholesky, or V sqrt(Lambda) from a
symmetric eigen-decomposition when S1 is singular).  All in float64 with symmetric solvers: no
imaginary parts, and fewer samples than dimensions is fine.  When S1 is reused (a fixed reference)
pass a :class:`FrechetReference` to factor it once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_stats(stats: Any, param: str) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(stats, "mu") and hasattr(stats, "sigma"):
        stats = (stats.mu, stats.sigma)
    if not isinstance(stats, (tuple, list)) or len(stats) != 2:
        raise TypeError(f"{param}: expected (mu, sigma) or an object with .mu and .sigma, got {type(stats).__name__}")
    mu = torch.as_tensor(np.asarray(stats[0]) if not isinstance(stats[0], torch.Tensor) else stats[0])
    sigma = torch.as_tensor(np.asarray(stats[1]) if not isinstance(stats[1], torch.Tensor) else stats[1])
    mu, sigma = mu.detach().cpu().to(torch.float64), sigma.detach().cpu().to(torch.float64)
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
        factor = torch.zeros(sym.shape[0], keep.numel(), dtype=sym.dtype)
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
    mu2, s2 = _as_stats(fake_stats, "fake_stats")
    if mu1.shape != mu2.shape:
        raise ValueError(f"fake_stats: dimension {mu2.shape[0]} differs from real_stats' {mu1.shape[0]}")
    if factor is None:
        factor = psd_factor(s1)
    diff = mu1 - mu2
    value = float(diff @ diff) + float(torch.trace(s1)) + float(torch.trace(s2)) \
        - 2.0 * trace_sqrt_product(factor, s2)
    return max(value, 0.0)
