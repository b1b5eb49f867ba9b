"""path and simplex samplers, and the generator-driven Gamma/Beta/Dirichlet draws they use."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from latentatlas.latent.samplers import build_sampler
from latentatlas.rng import beta, dirichlet, gamma


def codes(n=60, d=4, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("a", [0.3, 1.0, 4.5])
def test_gamma_and_beta_follow_scipy(a):
    g = torch.Generator().manual_seed(0)
    x = gamma(torch.full((4000,), a, dtype=torch.float64), generator=g)
    assert stats.kstest(x.numpy(), stats.gamma(a).cdf).pvalue > 1e-3
    b = beta(a, 2.0, 4000, generator=g)
    assert stats.kstest(b.numpy(), stats.beta(a, 2.0).cdf).pvalue > 1e-3


def test_dirichlet_rows_and_moments():
    w = dirichlet(0.5, 20000, 3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(w.sum(1), torch.ones(20000, dtype=torch.float64)) and (w >= 0).all()
    assert torch.allclose(w.mean(0), torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01)
    # Var of a Dirichlet(a, a, a) coordinate: (1/3)(2/3) / (3a + 1)
    assert torch.allclose(w.var(0), torch.full((3,), (2 / 9) / 2.5, dtype=torch.float64), atol=0.005)


def positions(z, samples, pairs):
    """t such that sample = (1 - t) z_i + t z_j, and the residual of that fit."""
    a, b = z[pairs[:, 0]], z[pairs[:, 1]]
    t = ((samples - a) * (b - a)).sum(1) / ((b - a) ** 2).sum(1)
    return t, (a + t[:, None] * (b - a) - samples).abs().max()


@pytest.mark.parametrize("spec", ["path", "path:mode=knn,neighbors=3", "path:position=beta,beta_a=5,beta_b=1"])
def test_path_samples_lie_on_the_drawn_segments(spec):
    z = codes()
    s = build_sampler(spec).fit(z)
    pairs = s.draw_pairs(3000, generator=torch.Generator().manual_seed(1))
    draws = s.sample(3000, generator=torch.Generator().manual_seed(1))
    t, residual = positions(z, draws, pairs)
    assert residual < 1e-10 and (t >= 0).all() and (t <= 1).all() and (pairs[:, 0] != pairs[:, 1]).all()
    expected = 5 / 6 if "beta" in spec else 0.5
    assert abs(float(t.mean()) - expected) < 0.02
    if "knn" in spec:
        near = torch.cdist(z, z).fill_diagonal_(float("inf")).topk(3, largest=False).indices
        assert (near[pairs[:, 0]] == pairs[:, 1:]).any(1).all()


def test_path_given_pairs_are_drawn_by_their_weights():
    z = codes()
    pairs = torch.tensor([[0, 1], [2, 3], [4, 5]])
    s = build_sampler("path").fit(z, pairs=pairs, pair_weights=torch.tensor([1.0, 0.0, 3.0]))
    drawn = s.draw_pairs(4000, generator=torch.Generator().manual_seed(0))
    share = (drawn[:, 0] == 4).double().mean()
    assert not (drawn[:, 0] == 2).any() and abs(float(share) - 0.75) < 0.03
    with pytest.raises(ValueError, match="pairs"):
        build_sampler("path").fit(z, pairs=torch.tensor([[0, 99]]))
    with pytest.raises(ValueError, match="pair_weights"):
        build_sampler("path").fit(z, pair_weights=torch.ones(3))
    with pytest.raises(ValueError, match="pair_weights"):
        build_sampler("path").fit(z, pairs=pairs, pair_weights=torch.tensor([1.0, -1.0, 1.0]))


def test_anchor_weights_choose_the_codes():
    z = codes()
    w = torch.zeros(60, dtype=torch.float64)
    w[7] = 1.0
    pairs = build_sampler("path").fit(z, weights=w).draw_pairs(200, generator=torch.Generator().manual_seed(0))
    assert (pairs[:, 0] == 7).all()


@pytest.mark.parametrize("spec", ["simplex", "simplex:mode=random,m=4,alpha=0.3"])
def test_simplex_samples_are_convex_combinations(spec):
    z = codes(n=40, d=2) * torch.tensor([1.0, 0.001], dtype=torch.float64)  # nearly on a line
    s = build_sampler(spec).fit(z)
    draws = s.sample(2000, generator=torch.Generator().manual_seed(0))
    assert (draws[:, 0] >= z[:, 0].min() - 1e-12).all() and (draws[:, 0] <= z[:, 0].max() + 1e-12).all()
    assert abs(float(draws[:, 0].mean() - z[:, 0].mean())) < 0.15


def test_simplex_and_knn_parameter_errors():
    with pytest.raises(ValueError, match="neighbors: expected at least m - 1"):
        build_sampler("simplex:m=5,neighbors=2")
    with pytest.raises(ValueError, match="neighbors: expected at most"):
        build_sampler("path:mode=knn,neighbors=10").fit(codes(n=5))
    with pytest.raises(ValueError, match="position"):
        build_sampler("path:position=gauss")
