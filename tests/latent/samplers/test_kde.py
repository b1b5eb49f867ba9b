"""kde against an exact float64 log-sum-exp reference, scikit-learn at low dimension, and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

from latentatlas.latent.samplers import build_sampler
from latentatlas.latent.samplers.kde import rule_factor


def data(n, d, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scale + 2.0)


def reference(q: np.ndarray, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """log (1/n) sum_i N(q; x_i, diag(h^2)) by direct differences, in float64."""
    diff = (q[:, None, :] - x[None, :, :]) / h
    return (logsumexp(-0.5 * (diff**2).sum(-1), axis=1) - math.log(len(x))
            - np.log(h).sum() - 0.5 * x.shape[1] * math.log(2 * math.pi))


@pytest.mark.parametrize("d", [1, 2, 8, 64])
@pytest.mark.parametrize("scale", ["isotropic", "diagonal"])
def test_log_density_is_exact_at_every_dimension(d, scale):
    x = data(600, d) * torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    q = data(200, d, seed=1) * 1.5
    s = build_sampler(f"kde:scale={scale}").fit(x.float())
    ref = reference(q.float().double().numpy(), x.float().double().numpy(), s.bandwidth_.numpy())
    np.testing.assert_allclose(s.score_samples(q.float()).numpy(), ref, rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-11), ("float32", 2e-4)])
def test_terms_far_below_the_top_one_are_floored_without_changing_the_value(dtype, rtol):
    """A narrow kernel: most shifted terms are thousands of nats under the top one, far below exp's
    normal range (float32's tolerance is its expansion of |q - x|^2 at |x / h| ~ 50, not the floor)."""
    x = data(3000, 8)
    q = torch.cat([x[:50] + 0.01, data(50, 8, seed=1)])
    s = build_sampler(f"kde:bandwidth=0.05,dtype={dtype}").fit(x.float())
    ref = reference(q.float().double().numpy(), x.float().double().numpy(), s.bandwidth_.double().numpy())
    np.testing.assert_allclose(s.score_samples(q.float()).double().numpy(), ref, rtol=rtol)


def test_agrees_with_sklearn_at_low_dimension():
    x, q = data(2000, 2), data(300, 2, seed=1)
    s = build_sampler("kde:bandwidth=0.3").fit(x)
    sk = KernelDensity(bandwidth=0.3).fit(x.numpy())
    np.testing.assert_allclose(s.score_samples(q).numpy(), sk.score_samples(q.numpy()), atol=1e-6)


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_rule_bandwidths_scale_with_the_data(rule):
    x = data(500, 3)
    a = build_sampler(f"kde:bandwidth={rule}").fit(x)
    b = build_sampler(f"kde:bandwidth={rule}").fit(10 * x)
    expected = rule_factor(rule, 500, 3) * x.var(0).mean().sqrt()
    assert torch.allclose(a.bandwidth_, expected.expand(3))
    assert torch.allclose(b.bandwidth_, 10 * a.bandwidth_)
    assert rule_factor("scott", 500, 3) == pytest.approx(500 ** (-1 / 7))
    assert rule_factor("silverman", 500, 3) == pytest.approx((500 * 5 / 4) ** (-1 / 7))
    diag = build_sampler(f"kde:bandwidth={rule},scale=diagonal").fit(x * torch.tensor([1.0, 5.0, 0.1]))
    assert torch.allclose(diag.bandwidth_ / diag.bandwidth_[0], torch.tensor([1.0, 5.0, 0.1], dtype=torch.float64),
                          rtol=0.15)


def test_heldout_bandwidth_beats_a_bad_fixed_bandwidth_and_records_its_curve():
    x, val = data(800, 2), data(400, 2, seed=5)
    s = build_sampler("kde:bandwidth=heldout").fit(x, generator=torch.Generator().manual_seed(0))
    curve = s.describe()["heldout_curve"]
    assert len(curve) == 25 and 0 < float(s.bandwidth_[0]) < 1.5
    for bad in (0.02, 3.0):
        assert s.score_samples(val).mean() > build_sampler(f"kde:bandwidth={bad}").fit(x).score_samples(val).mean()


def test_samples_have_the_kernel_smoothed_moments():
    x = data(400, 3)
    s = build_sampler("kde:bandwidth=0.5").fit(x)
    draws = s.sample(40000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), x.mean(0), atol=0.03)
    assert torch.allclose(draws.var(0), x.var(0, correction=0) + 0.25, atol=0.06)


def test_constant_codes_need_a_numeric_bandwidth():
    with pytest.raises(ValueError, match="spread"):
        build_sampler("kde").fit(torch.ones(10, 2))
    kde = build_sampler("kde:bandwidth=0.1").fit(torch.ones(10, 2))
    assert torch.isfinite(kde.score_samples(torch.ones(3, 2))).all()
