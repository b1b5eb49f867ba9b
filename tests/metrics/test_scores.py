"""KID against a direct numpy implementation; IS-style score and PSNR closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentatlas.metrics.kid import kid
from latentatlas.metrics.scores import inception_score, reconstruction_errors


def numpy_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_kid_matches_numpy_on_whole_sets():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) + 0.3
    out = kid(real, fake, n_subsets=1, subset_size=200, generator=torch.Generator().manual_seed(0))
    assert out["kid"] == pytest.approx(numpy_mmd2_unbiased(real, fake), rel=1e-10)


def test_kid_subsets_match_numpy_with_the_same_draws():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(300, 8)), rng.normal(size=(250, 8)) * 1.5
    out = kid(real, fake, n_subsets=5, subset_size=100, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    values = []
    for _ in range(5):
        ri = torch.randperm(300, generator=g)[:100].numpy()
        fi = torch.randperm(250, generator=g)[:100].numpy()
        values.append(numpy_mmd2_unbiased(real[ri], fake[fi]))
    assert out["kid"] == pytest.approx(np.mean(values), rel=1e-10)
    assert out["kid_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-8)


def test_kid_of_two_sets_used_whole_is_one_value_without_a_spread():
    """Subsets as large as both sets are the sets themselves: a std of 1e-14 would read as a precise score."""
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 0.3
    out = kid(real, fake, n_subsets=50, subset_size=100, generator=torch.Generator().manual_seed(0))
    assert out["kid_std"] is None and out["kid_subset_size"] == 60
    assert out["kid"] == pytest.approx(numpy_mmd2_unbiased(real, fake), rel=1e-10)
    assert kid(real, fake[:50], n_subsets=5, generator=torch.Generator().manual_seed(0))["kid_std"] > 0


def test_kid_near_zero_for_one_distribution_and_positive_for_two():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(1000, 10, generator=g), torch.randn(1000, 10, generator=g)
    same = kid(a, b, n_subsets=20, subset_size=500, generator=g)
    shifted = kid(a, b + 0.5, n_subsets=20, subset_size=500, generator=g)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    assert shifted["kid"] > 10 * max(abs(same["kid"]), same["kid_std"])


def test_inception_score_closed_forms():
    k = 10
    confident = torch.eye(k).repeat(10, 1) * 50.0      # every class equally often, each image certain
    assert inception_score(confident, splits=5)["is"] == pytest.approx(k, rel=1e-6)
    assert inception_score(torch.zeros(100, k), splits=5)["is"] == pytest.approx(1.0)
    one_class = torch.zeros(100, k)
    one_class[:, 3] = 50.0
    assert inception_score(one_class, splits=2)["is"] == pytest.approx(1.0, abs=1e-6)


def test_psnr_and_mse_closed_form():
    x = torch.zeros(4, 1, 8, 8)
    out = reconstruction_errors(x, x + 0.1)
    assert out["mse"] == pytest.approx(0.01)
    assert out["psnr"] == pytest.approx(20.0)
    a = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    b = torch.full((2, 3, 4, 4), 51, dtype=torch.uint8)          # 51 / 255 = 0.2
    assert reconstruction_errors(a, b)["psnr"] == pytest.approx(10 * math.log10(1 / 0.04))
    # uint8 images against float reconstructions: each argument is scaled by its own dtype
    assert reconstruction_errors(b, torch.full((2, 3, 4, 4), 0.1))["mse"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="x_hat"):
        reconstruction_errors(x, torch.zeros(4, 1, 8, 7))
