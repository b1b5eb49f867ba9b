"""Precision / recall / density / coverage: published reference values, brute force, direction, chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from latentatlas.metrics.prdc import PRDCReference, knn_radii, prdc, prdc_real_radii


def brute_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int, k_dc: int) -> dict[str, float]:
    """Naeem et al.'s definitions on full distance matrices (float64, scipy's cdist)."""
    def radii(x, k):
        return np.sort(cdist(x, x), axis=1)[:, k]     # column 0 is the point itself

    d = cdist(real, fake)
    r_pr, r_dc, f_pr = radii(real, k_pr), radii(real, k_dc), radii(fake, k_pr)
    return {"precision": (d < r_pr[:, None]).any(0).mean(), "recall": (d < f_pr[None, :]).any(1).mean(),
            "density": (d < r_dc[:, None]).sum(0).mean() / k_dc, "coverage": (d.min(1) < r_dc).mean()}


def test_matches_brute_force_definitions():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) * 1.2 + 0.3
    ours = prdc(real, fake, 3, k_dc=5, dtype=torch.float64)
    assert ours == pytest.approx(brute_prdc(real, fake, 3, 5), abs=1e-12)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(500, 8)).astype(np.float32), rng.normal(size=(450, 8)).astype(np.float32)
    whole = prdc(real, fake, 5)
    assert prdc(real, fake, 5, max_chunk_bytes=200_000) == whole    # 25 rows per chunk


def test_knn_radii_match_sklearn():
    x = np.random.default_rng(2).normal(size=(300, 10))
    dist, _ = NearestNeighbors(n_neighbors=4).fit(x).kneighbors(x)   # column 0: the point itself
    np.testing.assert_allclose(knn_radii(x, 3, dtype=torch.float64).numpy(), dist[:, 3], rtol=1e-10)


def test_prdc_readme_reference_values():
    """prdc's README: N(0, I) in 1000-d, 10,000 real vs 10,000 fake, k=5 gives precision 0.4772,
    recall 0.4705, density 1.0555, coverage 0.9735.  Over 10 seeds we measured the spread of one run
    (sd 0.009, 0.006, 0.066, 0.006); the bounds are ~3 sd."""
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(10_000, 1000, generator=g), torch.randn(10_000, 1000, generator=g)
    out = prdc(real, fake, 5)
    assert out["precision"] == pytest.approx(0.4772, abs=0.03)
    assert out["recall"] == pytest.approx(0.4705, abs=0.02)
    assert out["density"] == pytest.approx(1.0555, abs=0.2)
    assert out["coverage"] == pytest.approx(0.9735, abs=0.02)


def test_direction_tight_fakes_in_wide_real_cloud():
    """Fakes packed in a tight cluster inside a wide real cloud: high precision, low recall/coverage."""
    g = torch.Generator().manual_seed(4)
    real = torch.randn(2000, 8, generator=g) * 3.0
    fake = torch.randn(2000, 8, generator=g) * 0.2
    out = prdc(real, fake, 3, k_dc=5)
    assert out["precision"] > 0.95
    assert out["recall"] < 0.1
    assert out["coverage"] < 0.1
    assert out["density"] > 1.0
    # and the other way round: a wide fake cloud around a tight real one
    out = prdc(fake, real, 3, k_dc=5)
    assert out["precision"] < 0.2 and out["recall"] > 0.9


def test_identical_sets_are_perfect():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(5))
    out = prdc(x, x.clone(), 5)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0


def test_validation():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="k"):
        prdc(x, x, 10)
    with pytest.raises(ValueError, match="fake"):
        prdc(x, np.zeros((10, 4)), 3)
    with pytest.raises(ValueError, match="real"):
        prdc(np.zeros(10), x, 3)


def test_precomputed_real_radii_are_bit_identical():
    """The radii computed once per reference give exactly the four numbers of the cold call."""
    rng = np.random.default_rng(6)
    real = rng.normal(size=(600, 12)).astype(np.float32)
    fakes = [rng.normal(size=(n, 12)).astype(np.float32) * s + 0.2 for n, s in ((500, 1.0), (350, 1.5))]
    radii = prdc_real_radii(real, 3, k_dc=5)
    assert radii.shape == (600, 2) and radii.dtype == torch.float32
    ref = PRDCReference.build(real, 3, k_dc=5, max_chunk_bytes=100_000)   # chunking must not matter either
    for fake in fakes:
        cold = prdc(real, fake, 3, k_dc=5)
        assert 0 < cold["precision"] < 1 and 0 < cold["coverage"] < 1
        assert prdc(real, fake, 3, k_dc=5, real_radii=radii) == cold
        assert prdc(real, fake, 3, k_dc=5, real_radii=radii.numpy()) == cold
        assert ref.score(fake) == cold
    # float64 path and the same-k case
    cold64 = prdc(real, fakes[0], 4, dtype=torch.float64)
    r64 = prdc_real_radii(real, 4, dtype=torch.float64)
    assert prdc(real, fakes[0], 4, real_radii=r64, dtype=torch.float64) == cold64


def test_real_radii_validation():
    real, fake = np.zeros((20, 3)), np.ones((15, 3))
    for bad in (np.zeros((20,)), np.zeros((19, 2)), np.zeros((20, 1)), np.zeros((20, 2), np.int64)):
        with pytest.raises(ValueError, match="real_radii"):
            prdc(real, fake, 3, k_dc=5, real_radii=bad)
    with pytest.raises(ValueError, match="k_dc"):
        prdc_real_radii(real, 3, k_dc=20)
