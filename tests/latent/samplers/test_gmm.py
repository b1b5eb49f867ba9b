"""gmm and gaussian against scikit-learn's GaussianMixture, scipy and closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from latentatlas.latent.samplers import GMM, build_sampler, gmm, hierarchical, select_k

COVS = ["full", "diag", "tied", "spherical"]


def blobs(n=1200, d=5, k=4, spread=6.0, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g, dtype=torch.float64) * spread + 3.0
    labels = torch.arange(n) % k
    x = centers[labels] + scale * torch.randn(n, d, generator=g, dtype=torch.float64) * (1 + labels[:, None] % 2)
    return x, labels, centers


def sklearn_start(x, cov, k=4):
    """A deliberately rough starting point: sklearn after 2 EM iterations from random data points."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = GaussianMixture(k, covariance_type=cov, max_iter=2, tol=0, random_state=1,
                             init_params="random_from_data").fit(x.numpy())
    return sk.weights_, sk.means_, sk.covariances_


@pytest.mark.parametrize("dtype", ["float64", "mixed"])
@pytest.mark.parametrize("cov", COVS)
@pytest.mark.parametrize("max_iter", [3, 200])
def test_agrees_with_sklearn_from_the_same_start(cov, max_iter, dtype, monkeypatch):
    monkeypatch.setattr(gmm, "MIXED_MIN_WORK", 0)   # the screened mixed EM even on these few codes
    x, _, _ = blobs()
    w0, m0, c0 = sklearn_start(x, cov)
    prec0 = np.linalg.inv(c0) if cov in ("full", "tied") else 1.0 / c0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = GaussianMixture(4, covariance_type=cov, max_iter=max_iter, tol=1e-6, weights_init=w0, means_init=m0,
                             precisions_init=prec0).fit(x.numpy())
    ours = GMM(k=4, covariance=cov, max_iter=max_iter, tol=1e-6, dtype=dtype).fit(
        x, init={"weights": torch.tensor(w0), "means": torch.tensor(m0), "covariances": torch.tensor(c0)})
    assert ours.n_iter_ == sk.n_iter_ and ours.converged_ == sk.converged_
    np.testing.assert_allclose(ours.weights_.numpy(), sk.weights_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.means_.numpy(), sk.means_, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.covariances_.numpy(), sk.covariances_, rtol=0, atol=1e-9)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, abs=1e-10)
    np.testing.assert_allclose(ours.score_samples(x).numpy(), sk.score_samples(x.numpy()), rtol=0, atol=1e-9)
    assert ours.bic(x) == pytest.approx(sk.bic(x.numpy()), rel=1e-12)
    assert ours.aic(x) == pytest.approx(sk.aic(x.numpy()), rel=1e-12)
    np.testing.assert_array_equal(ours.predict(x).numpy(), sk.predict(x.numpy()))


def test_score_samples_is_the_mixture_density():
    x, _, _ = blobs(n=400, d=3, k=3)
    m = GMM(k=3).fit(x.float())
    w, mu, cov = m.weights_.numpy(), m.means_.numpy(), m.covariances_.numpy()
    q = x[:50].numpy()
    ref = np.log(sum(w[j] * multivariate_normal(mu[j], cov[j]).pdf(q) for j in range(3)))
    np.testing.assert_allclose(m.score_samples(x[:50]).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("cov", COVS)
def test_recovers_well_separated_clusters(cov):
    x, labels, centers = blobs(n=2000, d=6, k=5, spread=8.0)
    m = GMM(k=5, covariance=cov, n_init=2).fit(x.float(), generator=torch.Generator().manual_seed(0))
    assert adjusted_rand_score(labels.numpy(), m.predict(x).numpy()) == 1.0
    found = m.means_[torch.cdist(centers, m.means_).argmin(1)]
    assert torch.allclose(found, centers, atol=0.15)
    assert torch.allclose(m.weights_, torch.full((5,), 0.2, dtype=torch.float64), atol=0.01)


def test_sampling_matches_the_fitted_components():
    x, _, _ = blobs(n=1000, d=3, k=2, spread=10.0)
    m = GMM(k=2, covariance="full").fit(x)
    g = torch.Generator().manual_seed(0)
    s = m.sample(20000, generator=g, component=1)
    assert torch.allclose(s.mean(0), m.means_[1], atol=0.05)
    assert torch.allclose(torch.cov(s.T), m.covariances_[1], atol=0.05)
    counts = torch.bincount(m.predict(m.sample(20000, generator=g)), minlength=2) / 20000
    assert torch.allclose(counts, m.weights_.float(), atol=0.02)
    with pytest.raises(ValueError, match="component"):
        m.sample(5, component=2)


def test_each_draw_of_a_full_mixture_takes_its_own_components_covariance():
    """The draws are made sorted by component and put back: a row given another component's noise would show
    in a tight component's spread."""
    g = torch.Generator().manual_seed(0)
    tight, wide = 1e-3 * torch.randn(500, 3, generator=g), 100.0 + 10.0 * torch.randn(500, 3, generator=g)
    m = GMM(k=2, covariance="full").fit(torch.cat([tight, wide]).double())
    s = m.sample(4000, generator=g)
    near_tight = s.norm(dim=1) < 50
    assert 1500 < int(near_tight.sum()) < 2500
    assert float(s[near_tight].std(0).max()) < 2e-3 and float(s[~near_tight].std(0).min()) > 8.0


def test_gaussian_is_the_maximum_likelihood_gaussian():
    x, _, _ = blobs(n=500, d=4, k=3)
    s = build_sampler("gaussian:reg_covar=0").fit(x)
    assert torch.allclose(s.means_[0], x.mean(0))
    assert torch.allclose(s.covariances_[0], torch.cov(x.T, correction=0), atol=1e-12)
    ref = multivariate_normal(x.mean(0).numpy(), np.cov(x.numpy().T, bias=True)).logpdf(x[:20].numpy())
    np.testing.assert_allclose(s.score_samples(x[:20]).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "mixed"])
def test_batched_e_step_and_float32_agree_with_the_default(dtype, monkeypatch):
    monkeypatch.setattr(gmm, "MIXED_MIN_WORK", 0)
    x, _, _ = blobs(n=3000, d=8, k=3)
    ref = GMM(k=3, max_iter=20, tol=0, dtype=dtype).fit(x)
    tiny = GMM(k=3, max_iter=20, tol=0, dtype=dtype, max_memory_gib=1e-4).fit(x)  # batches of 64 rows, no cache
    assert torch.allclose(tiny.means_, ref.means_, atol=1e-10)
    assert tiny.lower_bound_ == pytest.approx(ref.lower_bound_, abs=1e-10)
    f32 = GMM(k=3, max_iter=20, tol=0, dtype="float32").fit(x.float())
    assert f32.lower_bound_ == pytest.approx(ref.lower_bound_, abs=1e-3)


def test_degenerate_codes_get_reported_jitter_instead_of_failing():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 6, generator=g, dtype=torch.float64)
    m = GMM(k=3, reg_covar=0.0).fit(x)  # rank-2 codes in 6 dimensions: singular covariances
    assert torch.isfinite(m.score_samples(x)).all()
    assert (m.reg_added_ > 0).any() and m.describe()["n_jittered"] > 0
    assert torch.linalg.cholesky_ex(m.covariances_)[1].eq(0).all()


def test_input_errors():
    x, _, _ = blobs(n=10, d=2, k=2)
    with pytest.raises(ValueError, match="k: expected at most the number of codes \\(10\\), got 11"):
        GMM(k=11).fit(x)
    with pytest.raises(ValueError, match="k:"):
        GMM(k=0)
    with pytest.raises(ValueError, match="init\\['means'\\]: expected shape"):
        GMM(k=2).fit(x, init={"weights": torch.ones(2), "means": torch.zeros(3, 2), "covariances": torch.ones(2, 2, 2)})


@pytest.mark.parametrize("criterion", ["bic", "aic", "heldout"])
def test_select_k_finds_the_true_number_of_clusters(criterion):
    x, _, _ = blobs(n=1200, d=3, k=4, spread=10.0)
    best, curve = select_k(x, [1, 2, 4, 8], criterion=criterion, generator=torch.Generator().manual_seed(0),
                           covariance="diag", n_init=2)
    assert [r["k"] for r in curve] == [1, 2, 4, 8]
    assert best.n_components_ == 4 and best.describe()["selection"] == curve
    assert all(set(r) >= {"k", "bic", "aic", "heldout_ll"} for r in curve)


def test_spec_k_grid_and_hierarchical_mode():
    x, _, _ = blobs(n=1200, d=3, k=4, spread=10.0)
    s = build_sampler("gmm:k=1|4|8,covariance=diag,n_init=2").fit(x)
    assert s.n_components_ == 4 and s.spec == "gmm:k=1|4|8,covariance=diag,n_init=2"
    h, curve = hierarchical(x, 8, generator=torch.Generator().manual_seed(0), covariance="diag")
    assert h.n_components_ == 4 and [r["k"] for r in curve] == [1, 2, 3, 4]
    assert all(b["heldout_ll"] > a["heldout_ll"] for a, b in zip(curve, curve[1:]))


def test_auto_k_spec_keeps_the_curve_and_gaussian_reports_convergence(tmp_path):
    x, _, _ = blobs(n=600, d=2, k=3, spread=10.0)
    s = build_sampler("gmm:k=auto,covariance=spherical").fit(x)
    curve = s.describe()["selection"]
    assert s.n_components_ in [r["k"] for r in curve] and s.describe()["selection_criterion"] == "bic"
    assert [r["k"] for r in curve][:3] == [1, 2, 5]
    loaded = type(s).load(s.save(tmp_path / "gmm.pt"))
    assert loaded.describe()["selection"] == curve
    g = build_sampler("gaussian").fit(x)
    assert g.describe()["converged"] and g.describe()["k"] == 1
