"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / D + 1)^3, averaged over random subsets of equal size (as torch-fidelity does)."""

from __future__ import annotations

from typing import Any

import torch

from latentatlas.tensors import as_features


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> torch.Tensor:
    """(x (A, D), y (B, D)) -> (A, B) with k = (x.y / D + coef0) ** degree."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 estimate between x (m, D) and y (m', D): diagonals of k(x, x) and k(y, y) dropped."""
    m, n = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x, degree, coef0)
    kyy = polynomial_kernel(y, y, degree, coef0)
    kxy = polynomial_kernel(x, y, degree, coef0)
    term_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    term_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


def kid(real: Any, fake: Any, *, n_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        coef0: float = 1.0, generator: torch.Generator | None = None) -> dict[str, float]:
    """KID of fake (M, D) against real (N, D): mean and std of unbiased MMD^2 over ``n_subsets``
    subsets of ``min(subset_size, N, M)`` rows drawn without replacement (each subset) from ``generator``;
    ``kid_std`` None where there is no spread to measure (one subset, or subsets that are both sets whole)."""
    real, fake = as_features(real, "real", min_rows=2), as_features(fake, "fake", min_rows=2)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"fake: expected {real.shape[1]} feature columns like real, got {fake.shape[1]}")
    if n_subsets < 1 or subset_size < 2:
        raise ValueError(f"n_subsets >= 1 and subset_size >= 2 expected, got {n_subsets} and {subset_size}")
    size = min(subset_size, real.shape[0], fake.shape[0])
    whole = size == real.shape[0] == fake.shape[0]   # every subset would be both sets whole: one value, no spread
    values = []
    for _ in range(1 if whole else n_subsets):
        ri = torch.randperm(real.shape[0], generator=generator)[:size]
        fi = torch.randperm(fake.shape[0], generator=generator)[:size]
        values.append(mmd2_unbiased(real[ri], fake[fi], degree, coef0))
    v = torch.tensor(values, dtype=torch.float64)
    return {"kid": float(v.mean()), "kid_std": float(v.std()) if len(values) > 1 else None, "kid_subset_size": size}
