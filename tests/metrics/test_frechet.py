"""Fréchet distance: closed form for Gaussians, pytorch-fid's scipy sqrtm formula, degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import FrechetReference, frechet, frechet_infinity, frechet_infinity_sizes


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    """The formula pytorch-fid evaluates: ||mu1-mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(0)
    d = 50
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet((mu1, np.diag(v1)), (mu2, np.diag(v2))) == pytest.approx(expected, rel=1e-10)


def test_rotated_gaussians_closed_form():
    """Same covariance spectrum in two rotated bases commuting: S1 = Q D1 Q^T, S2 = Q D2 Q^T."""
    rng = np.random.default_rng(1)
    d = 30
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    v1, v2 = rng.uniform(0.1, 2, d), rng.uniform(0.1, 2, d)
    s1, s2 = q @ np.diag(v1) @ q.T, q @ np.diag(v2) @ q.T
    expected = np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet((np.zeros(d), s1), (np.zeros(d), s2)) == pytest.approx(expected, rel=1e-9)


def test_matches_scipy_sqrtm_on_random_data():
    rng = np.random.default_rng(2)
    d = 64
    a, b = rng.normal(size=(500, d)), rng.normal(size=(400, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.2
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    ours = frechet((mu1, s1), (mu2, s2))
    assert ours == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)
    assert frechet(FrechetReference((mu1, s1)), (mu2, s2)) == pytest.approx(ours, rel=1e-12)


def test_zero_for_identical_statistics():
    f = torch.randn(300, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = features_to_stats(f)
    assert frechet(stats, stats) == pytest.approx(0.0, abs=1e-9)


def test_fewer_samples_than_dimensions_is_finite_and_real():
    g = torch.Generator().manual_seed(3)
    d = 256
    s1 = features_to_stats(torch.randn(50, d, generator=g, dtype=torch.float64))
    s2 = features_to_stats(torch.randn(40, d, generator=g, dtype=torch.float64) + 0.1)
    value = frechet(s1, s2)
    assert isinstance(value, float) and np.isfinite(value) and value > 0
    # singular covariances: still the value scipy gets where its sqrtm succeeds
    ref = scipy_frechet(*(np.asarray(t) for t in (*s1, *s2)))
    assert value == pytest.approx(ref, rel=1e-5)


def test_argument_validation():
    with pytest.raises(ValueError, match="fake_stats"):
        frechet((np.zeros(3), np.eye(3)), (np.zeros(4), np.eye(4)))
    with pytest.raises(TypeError, match="real_stats"):
        frechet(np.zeros(3), (np.zeros(3), np.eye(3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet((np.full(3, np.nan), np.eye(3)), (np.zeros(3), np.eye(3)))


def test_exactly_singular_covariances_factor_exactly():
    """Zero-variance dimensions (always-black border pixels) are dropped before Cholesky; a rank-deficient
    covariance with full diagonal makes Cholesky fail and the eigen-decomposition take over."""
    from latentatlas.metrics.frechet import psd_factor

    v1 = np.array([0.0, 0.0, 1.0, 2.0, 0.5])
    v2 = np.array([0.3, 0.0, 1.5, 0.2, 0.5])
    f = psd_factor(torch.tensor(np.diag(v1)))
    np.testing.assert_allclose((f @ f.T).numpy(), np.diag(v1), atol=1e-12)
    expected = np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    assert frechet((np.zeros(5), np.diag(v1)), (np.zeros(5), np.diag(v2))) == pytest.approx(expected, rel=1e-10)
    ones = torch.ones(4, 4, dtype=torch.float64)                  # rank 1, every diagonal entry 1
    f = psd_factor(ones)
    torch.testing.assert_close(f @ f.T, ones, rtol=0, atol=1e-12)


def test_frechet_infinity_removes_the_sample_size_bias():
    """Two samples of one Gaussian N(0, I_D): the true distance is 0, a sample of N images scores about
    (D + D (D + 1) / 4) / N (D / N from the mean, ||S - I||_F^2 / 4 from the square-root term)."""
    d, n = 32, 3000
    ref = (torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    for seed in range(3):
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        biased = frechet(ref, features_to_stats(x))
        out = frechet_infinity(ref, x, generator=torch.Generator().manual_seed(100 + seed))
        assert biased > 0.08
        assert abs(out["frechet_inf"]) < 0.05
        assert out["frechet_inf_slope"] == pytest.approx(d + d * (d + 1) / 4, rel=0.2)


def test_frechet_infinity_is_seeded_and_keeps_a_real_distance():
    """Same generator, same value; a true distance of D (s - 1)^2 between N(0, I) and N(0, s^2 I) survives."""
    d, n, s = 16, 2000, 1.5
    ref = (torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * s
    first, again = (frechet_infinity(ref, x, generator=torch.Generator().manual_seed(7)) for _ in range(2))
    assert first == again
    assert first["frechet_inf"] == pytest.approx(d * (s - 1) ** 2, abs=0.3)


def test_frechet_infinity_subset_sizes_and_too_few_images():
    sizes = frechet_infinity_sizes(10_000, 64)
    assert sizes[0] == 1000 and sizes[-1] == 10_000 and len(sizes) == 15 and (np.diff(sizes) > 0).all()
    assert frechet_infinity_sizes(10_000, 2048)[0] == 4096        # at least 2 images per dimension
    with pytest.raises(ValueError, match="fake_features: FD-infinity needs at least 256 images for 64-d"):
        frechet_infinity_sizes(200, 64)
