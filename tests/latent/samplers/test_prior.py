"""prior: N(0, T^2 I) against scipy."""

import numpy as np
import torch
from scipy.stats import multivariate_normal

from latentatlas.latent.samplers import build_sampler


def test_prior_density_and_temperature():
    z = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    s = build_sampler("prior:temperature=0.7").fit(z)
    ref = multivariate_normal(np.zeros(3), 0.49 * np.eye(3)).logpdf(z.double().numpy())
    np.testing.assert_allclose(s.score_samples(z).numpy(), ref, rtol=1e-12)
    draws = s.sample(50000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.std(0), torch.full((3,), 0.7), atol=0.01)
