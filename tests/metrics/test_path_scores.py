"""Interpolation path scores: closed forms for smoothness and the endpoint gap, and path_scores, which takes
the paths a chunk at a time, equal to the scores of all paths at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentatlas.metrics import interpolation as quality


def test_a_constant_speed_path_is_perfectly_smooth_and_its_length_is_the_distance():
    t = torch.linspace(0, 1, 5)
    frames = (t[None, :, None, None, None] * torch.full((2, 1, 1, 2, 2), 3.0))   # (2, 5, 1, 2, 2): 0 -> 3
    scores = quality.smoothness(frames)
    assert scores["step_cv"] == pytest.approx(0, abs=1e-12)
    assert scores["max_step_ratio"] == pytest.approx(1)
    assert scores["path_length"] == pytest.approx(3.0 * 2)   # |(3, 3, 3, 3)| = 6


def test_the_step_ratio_of_a_path_with_one_jump():
    steps = torch.tensor([0.0, 1.0, 2.0, 6.0])                     # steps 1, 1, 4: mean 2, largest 4
    frames = steps[None, :, None, None, None]
    scores = quality.smoothness(frames)
    assert scores["max_step_ratio"] == pytest.approx(2.0)
    assert scores["step_cv"] == pytest.approx(np.std([1, 1, 4]) / 2)


def test_the_endpoint_gap_is_the_mean_squared_error_of_both_ends():
    frames = torch.zeros(2, 3, 1, 2, 2)
    x0, x1 = torch.full((2, 1, 2, 2), 0.5), torch.ones(2, 1, 2, 2)
    assert quality.endpoint_gap(frames, x0, x1) == pytest.approx((0.25 + 1.0) / 2)


def test_scores_taken_a_chunk_of_paths_at_a_time_equal_those_of_all_paths_at_once():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 16, generator=g, dtype=torch.float64)   # float64: lstsq by chunk agrees on any CPU

    def decode(z):          # (n, 3) -> (n, 1, 4, 4) images in [0, 1]
        return torch.sigmoid(z @ weight).reshape(-1, 1, 4, 4)

    def encode(x):          # an imperfect inverse: a cycle error of a tenth of the code
        return 0.9 * torch.linalg.lstsq(weight.T, torch.logit(x.reshape(-1, 16).clamp(1e-6, 1 - 1e-6)).T).solution.T

    real = decode(torch.randn(200, 3, generator=g, dtype=torch.float64))
    features = quality.PixelPCAFeatures(real, k=4)
    z0, z1 = torch.randn(2, 11, 3, generator=g, dtype=torch.float64)
    path = z0[:, None] + torch.linspace(0, 1, 5, dtype=torch.float64)[None, :, None] * (z1 - z0)[:, None]
    x0, x1 = decode(z0) * 0.9, decode(z1) * 0.9
    whole, kept_whole = quality.path_scores(decode, encode, features, features(real), path, x0, x1, chunk=100)
    chunked, kept = quality.path_scores(decode, encode, features, features(real), path, x0, x1, chunk=3, keep=4)
    assert set(whole) == {"realism", "cycle", "step_cv", "max_step_ratio", "path_length", "endpoint_gap_mse"}
    for key, value in whole.items():
        np.testing.assert_allclose(chunked[key], value, rtol=1e-9, err_msg=key)
    frames = decode(path.reshape(-1, 3)).reshape(11, 5, 1, 4, 4)
    assert whole["step_cv"] == pytest.approx(quality.smoothness(frames)["step_cv"], rel=1e-12)
    np.testing.assert_allclose(whole["realism"], quality.path_realism(features, features(real), frames))
    torch.testing.assert_close(kept, frames[:4])      # the first paths' frames, for the figures
    assert kept_whole.shape[:2] == (8, 5)
