"""Nearest training distances and Meehan et al.'s data-copying test: copies vs fresh draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from latentatlas.metrics.memorization import data_copying_test, nearest_neighbours, nearest_train_distances


@pytest.fixture
def sets():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(3000, 6, generator=g, dtype=torch.float64)
    real = torch.randn(1000, 6, generator=g, dtype=torch.float64)
    fresh = torch.randn(1000, 6, generator=g, dtype=torch.float64)
    copies = train[:1000].clone()
    return train, real, fresh, copies


def test_nearest_neighbours_match_sklearn(sets):
    train, real, *_ = sets
    dist, idx = nearest_neighbours(train, real, max_chunk_bytes=100_000)
    d_ref, i_ref = NearestNeighbors(n_neighbors=1).fit(train.numpy()).kneighbors(real.numpy())
    np.testing.assert_allclose(dist.numpy(), d_ref[:, 0], rtol=1e-9)
    assert (idx.numpy() == i_ref[:, 0]).all()


def test_copies_have_zero_distance_and_very_negative_z(sets):
    train, real, fresh, copies = sets
    summary = nearest_train_distances(train, copies, real)
    assert summary["nn_train_mean"] == pytest.approx(0.0, abs=1e-6)
    assert summary["nn_train_ratio"] < 1e-3
    out = data_copying_test(train, real, copies, n_cells=10, generator=torch.Generator().manual_seed(0))
    assert out["data_copying_z"] < -10
    assert out["data_copying_cells"] >= 5


def test_fresh_draws_are_not_flagged(sets):
    train, real, fresh, _ = sets
    summary = nearest_train_distances(train, fresh, real)
    assert 0.8 < summary["nn_train_ratio"] < 1.25
    out = data_copying_test(train, real, fresh, n_cells=10, generator=torch.Generator().manual_seed(0))
    assert abs(out["data_copying_z"]) < 3


def test_validation(sets):
    train, real, fresh, _ = sets
    with pytest.raises(ValueError, match="n_cells"):
        data_copying_test(train[:5], real, fresh, n_cells=10)
    with pytest.raises(ValueError, match="query"):
        nearest_neighbours(train, torch.zeros(3, 5))
