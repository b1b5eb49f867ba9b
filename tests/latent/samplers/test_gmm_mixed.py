"""The mixed-precision EM (``dtype="mixed"``, the gmm default) against exact float64 references: one E + M
pass against torch's MultivariateNormal densities, whole fits against ``dtype="float64"`` (held-out
log-likelihood within 1e-4 nats per code), and the float32 k-means initialisation against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans

from latentatlas.latent.samplers import GMM, build_sampler, gmm
from latentatlas.latent.samplers import gmm_em as em
from latentatlas.latent.samplers import gmm_kmeans as kmeans
from latentatlas.latent.samplers import gmm_mixed as mixed

COVS = ["full", "diag", "tied", "spherical"]


def mixture_codes(kind: str, n: int = 3000, d: int = 8, k: int = 6, seed: int = 0) -> torch.Tensor:
    """(n, d) float64 draws of a random k-component mixture: "far" (means hundreds of widths from the
    origin), "conditioned" (covariance eigenvalues from 1 down to 1e-8, rotated), "overlap" (means within
    one width of each other) or "anisotropic" (random linear maps, as bench_gmm.make_codes)."""
    g = torch.Generator().manual_seed(seed)
    spread = {"far": 300.0, "conditioned": 5.0, "overlap": 0.7, "anisotropic": 2.0}[kind]
    centers = torch.randn(k, d, generator=g, dtype=torch.float64) * spread + (50.0 if kind == "far" else 0.0)
    if kind == "conditioned":
        rot, _ = torch.linalg.qr(torch.randn(k, d, d, generator=g, dtype=torch.float64))
        maps = rot * torch.logspace(0, -4, d, dtype=torch.float64)   # standard deviations 1 ... 1e-4
    else:
        maps = torch.randn(k, d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        maps = maps * torch.rand(k, 1, d, generator=g, dtype=torch.float64) if kind == "anisotropic" else maps
    labels = torch.randint(k, (n,), generator=g)
    eps = torch.randn(n, d, generator=g, dtype=torch.float64)
    return centers[labels] + torch.bmm(maps[labels], eps[:, :, None])[:, :, 0]


def reference_pass(x: torch.Tensor, mix: em.Mixture, covariance: str) -> tuple[float, torch.Tensor]:
    """Sum of log-likelihoods and statistics [sum r, sum r x, sum r x2] from torch's Gaussian densities."""
    k, d = mix.means.shape
    cov = mix.covariances
    if covariance == "tied":
        cov = cov.expand(k, d, d)
    elif covariance != "full":
        cov = torch.diag_embed(cov if covariance == "diag" else cov[:, None].expand(k, d))
    dist = torch.distributions.MultivariateNormal(mix.means, covariance_matrix=cov)
    logp = dist.log_prob(x[:, None, :]) + torch.log(mix.weights)
    r = torch.softmax(logp, dim=1)
    return float(torch.logsumexp(logp, 1).sum()), r.T @ em.features(x, covariance)


@pytest.mark.parametrize("kind", ["far", "conditioned", "overlap", "anisotropic"])
@pytest.mark.parametrize("cov", COVS)
def test_one_pass_equals_exact_float64(kind, cov):
    """Blocks split (at most 200 rows, clusters under 32 rows pooled), features cached or not: the
    screened pass gives the exact likelihood and statistics of a mixture from 3 float64 EM iterations."""
    x = mixture_codes(kind)
    x = x - x.mean(0)
    fit = GMM(k=6, covariance=cov, dtype="float64", max_iter=3, tol=0).fit(x)
    W, _, mix = em.logprob_weights(em.Mixture(fit.weights_, fit.means_ - fit.shift_, fit.covariances_), cov)
    labels = torch.cat([kmeans.nearest(x, mix.means, 1000)[:-20], torch.full((20,), 5)])   # a pooled cluster
    ref_total, ref_stats = reference_pass(x, mix, cov)
    scale = ref_stats.abs().amax(0)
    for cache in (True, False):
        blocks = mixed.Blocks(x, labels, 6, cov, 200, cache)
        assert max(len(r) for r in blocks.rows) <= 200 and len(blocks) > 6
        total, stats = mixed.em_pass(blocks, W, mix, cov)
        assert float(total) == pytest.approx(ref_total, rel=1e-10)
        assert torch.allclose(stats, ref_stats, rtol=0, atol=1e-9 * float(scale.max()))
        assert torch.allclose(stats[:, 0], ref_stats[:, 0], rtol=0, atol=1e-9 * len(x))


@pytest.mark.parametrize("kind", ["far", "overlap"])
def test_a_pass_gives_up_after_a_tenth_of_the_codes_where_the_screen_keeps_most_pairs(kind, monkeypatch):
    """give_up_above: overlapping components keep most pairs, so the pass stops after the blocks of a tenth of
    the codes (None); on separated ones it runs to the end and returns what the pass without it returns."""
    x = mixture_codes(kind)
    x = x - x.mean(0)
    fit = GMM(k=6, dtype="float64", max_iter=3, tol=0).fit(x)
    W, _, mix = em.logprob_weights(em.Mixture(fit.weights_, fit.means_ - fit.shift_, fit.covariances_), "full")
    blocks = mixed.Blocks(x, kmeans.nearest(x, mix.means, 1000), 6, "full", 200, True)
    whole, share = mixed.em_pass(blocks, W, mix, "full"), blocks.exact_share
    visited, screen = [], blocks.screen_features
    monkeypatch.setattr(blocks, "screen_features", lambda j: visited.append(j) or screen(j))
    out = mixed.em_pass(blocks, W, mix, "full", give_up_above=gmm.MIXED_MAX_SHARE)
    if kind == "overlap":
        assert share > gmm.MIXED_MAX_SHARE and out is None and blocks.exact_share > gmm.MIXED_MAX_SHARE
        assert mixed.PROBE_SHARE * len(x) <= sum(len(blocks.rows[j]) for j in visited) < len(x) / 2
    else:
        assert share < gmm.MIXED_MAX_SHARE and len(visited) == len(blocks)
        assert float(out[0]) == float(whole[0]) and torch.equal(out[1], whole[1])


@pytest.mark.parametrize("kind", ["far", "conditioned", "overlap", "anisotropic"])
@pytest.mark.parametrize("cov", COVS)
def test_mixed_fit_equals_float64_fit_on_held_out_codes(kind, cov, monkeypatch):
    monkeypatch.setattr(gmm, "MIXED_MIN_WORK", 0)   # screened even on these few codes
    monkeypatch.setattr(gmm, "MIXED_MAX_SHARE", 1.0)   # and on every pass, however much the screen keeps
    z = mixture_codes(kind, n=4000, seed=1)
    train, held_out = z[:3000].float(), z[3000:].float()   # float32 codes, as encoders give
    fits = {dtype: GMM(k=6, covariance=cov, dtype=dtype).fit(train, generator=torch.Generator().manual_seed(0))
            for dtype in ("mixed", "float64")}
    assert fits["mixed"].n_iter_ == fits["float64"].n_iter_
    assert fits["mixed"].lower_bound_ == pytest.approx(fits["float64"].lower_bound_, abs=1e-6)
    assert fits["mixed"].score(held_out) == pytest.approx(fits["float64"].score(held_out), abs=1e-4)
    assert fits["mixed"].means_.dtype == torch.float64


@pytest.mark.parametrize("kind, n_init, screened_passes", [("overlap", 1, 1), ("overlap", 3, 1), ("far", 1, None)])
def test_the_screen_hands_over_to_float64_when_it_keeps_most_pairs(kind, n_init, screened_passes, monkeypatch):
    """Overlapping components keep most (code, component) pairs as candidates: after one screened pass the
    fit goes on with the plain float64 EM and ends where dtype=float64 does, and later restarts start on
    float64; separated ones stay screened."""
    monkeypatch.setattr(gmm, "MIXED_MIN_WORK", 0)
    shares = []   # of each screened pass
    screened = mixed.em_pass

    def counted(blocks, *args, **kwargs):
        out = screened(blocks, *args, **kwargs)
        shares.append(blocks.exact_share)
        return out

    monkeypatch.setattr(mixed, "em_pass", counted)
    z = mixture_codes(kind, n=3000, seed=1)
    fits = {dtype: GMM(k=6, dtype=dtype, n_init=n_init).fit(z, generator=torch.Generator().manual_seed(0))
            for dtype in ("mixed", "float64")}
    assert len(shares) == (screened_passes or fits["mixed"].n_iter_)
    assert (shares[0] > gmm.MIXED_MAX_SHARE) == (kind == "overlap")
    assert fits["mixed"].n_iter_ == fits["float64"].n_iter_
    assert fits["mixed"].lower_bound_ == pytest.approx(fits["float64"].lower_bound_, abs=1e-9)


@pytest.mark.parametrize("mode", ["grid", "hierarchical"])
def test_a_selection_on_overlapping_codes_runs_no_whole_screened_pass(mode, monkeypatch):
    """k selection on overlapping codes: every fit's screened pass gives up after a tenth of the codes (the
    rest of that fit runs the float64 EM), and the selection ends where dtype=float64 ends."""
    monkeypatch.setattr(gmm, "MIXED_MIN_WORK", 0)
    passes = []   # (components, whether the screened pass gave up)
    screened = mixed.em_pass

    def recorded(b, W, mix, **kw):
        out = screened(b, W, mix, **kw)
        passes.append((len(mix.weights), out is None))
        return out

    monkeypatch.setattr(mixed, "em_pass", recorded)
    z = mixture_codes("overlap", n=3000, seed=1)
    spec = "gmm:k=2|4|6|8" if mode == "grid" else "gmm:k=6,hierarchical=true"
    fits = {dtype: build_sampler(f"{spec},dtype={dtype}").fit(z, generator=torch.Generator().manual_seed(0))
            for dtype in ("mixed", "float64")}
    curve = fits["mixed"].describe()["selection"]
    # (k = 1 has nothing to screen away: its screen pays and stays)
    assert {k for k, _ in passes if k > 1} == ({2, 4, 6, 8} if mode == "grid" else {2, 3, 4, 5, 6})
    assert all(gave_up for k, gave_up in passes if k > 1)
    reference = fits["float64"].describe()["selection"]
    assert [r.keys() for r in curve] == [r.keys() for r in reference]
    assert all(math.isclose(a[key], b[key], rel_tol=1e-12) if isinstance(a[key], float) else a[key] == b[key]
               for a, b in zip(curve, reference) for key in a)
    assert fits["mixed"].lower_bound_ == pytest.approx(fits["float64"].lower_bound_, abs=1e-9)


@pytest.mark.slow
def test_d256_k500_mixed_fits_where_float64_fits():
    """The seed research's setting at a small N, one EM iteration: 500 components for 520 codes in 256
    dimensions (one or two codes per component, covariances set by reg_covar)."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(620, 256, generator=g) * torch.rand(256, generator=g) + torch.randn(256, generator=g)
    fits = {dtype: GMM(k=500, dtype=dtype, max_iter=1).fit(z[:520], generator=torch.Generator().manual_seed(0))
            for dtype in ("mixed", "float64")}
    scores = {dtype: m.score(z[520:]) for dtype, m in fits.items()}
    assert all(math.isfinite(s) for s in scores.values())
    assert scores["mixed"] == pytest.approx(scores["float64"], abs=1e-4, rel=1e-9)
    assert torch.allclose(fits["mixed"].weights_, fits["float64"].weights_, rtol=0, atol=1e-12)


def test_hard_statistics_equal_the_dense_ones():
    x = mixture_codes("far")
    x = x - x.mean(0)
    labels = torch.randint(6, (len(x),), generator=torch.Generator().manual_seed(0))
    labels[:10] = 6   # a seventh cluster of 10 codes: pooled
    blocks = mixed.Blocks(x, labels, 7, "full", 300, cache=False)
    dense = em.hard_stats(em.FeatureBatches(x, "full", 512, cache=False), labels, 7)
    assert torch.allclose(mixed.hard_stats(blocks, 7), dense, rtol=1e-11, atol=1e-9)


def test_lloyd_reaches_scikit_learns_k_means_from_the_same_seeds():
    x = mixture_codes("anisotropic", n=4000, k=8).float()
    seeds = kmeans.kmeans_plusplus(x, 8, generator=torch.Generator().manual_seed(3))
    ours = kmeans.lloyd(x, seeds, 300, 0.0, 1000)
    ref = KMeans(8, init=seeds.numpy(), n_init=1, algorithm="lloyd", tol=0, max_iter=300).fit(x.numpy())
    np.testing.assert_allclose(ours.numpy(), ref.cluster_centers_, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(kmeans.nearest(x, ours, 1000).numpy(), ref.labels_)


def test_small_mixed_fits_run_the_float64_em():
    x = mixture_codes("anisotropic", n=500, d=4, k=3)
    assert 500 * 3 * em.n_features(4, "full") < gmm.MIXED_MIN_WORK
    ours = GMM(k=3).fit(x, generator=torch.Generator().manual_seed(0))
    ref = GMM(k=3, dtype="float64").fit(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours.means_, ref.means_) and ours.lower_bound_ == ref.lower_bound_


def test_dtype_is_checked():
    with pytest.raises(ValueError, match="dtype: expected one of"):
        GMM(dtype="float16")
