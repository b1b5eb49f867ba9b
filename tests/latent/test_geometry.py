"""Hull membership against one scipy linprog per query, and the other geometry diagnostics."""

import numpy as np
import pytest
import torch

from latentatlas.latent import geometry as geo
from latentatlas.latent import maps
from latentatlas.latent.interpolate import interpolate
from latentatlas.runs.figures import save_scatter


@pytest.mark.parametrize("n,d,scale", [(200, 3, 1.0), (400, 6, 0.8), (300, 12, 0.5)])
def test_hull_identical_to_linprog_per_query(n, d, scale):
    g = torch.Generator().manual_seed(d)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    q = torch.randn(80, d, generator=g, dtype=torch.float64) * scale
    q = torch.cat([q, x[:5], 0.5 * (x[5:10] + x[10:15])])     # vertices and midpoints are inside
    ours, stats = geo.in_hull(q, x, return_stats=True)
    ref = geo.in_hull_linprog(q, x)
    np.testing.assert_array_equal(ours, ref)
    assert ours[-10:].all()
    assert 0 < ref.sum() < len(ref)
    assert stats["screened_outside"] + stats["decided_by_lp"] == len(q)


def test_hull_screening_settles_far_points_without_lp():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(500, 4, generator=g, dtype=torch.float64)
    far = torch.rand(50, 4, generator=g, dtype=torch.float64) + 3.0
    inside, stats = geo.in_hull(far, x, return_stats=True)
    assert not inside.any() and stats["screened_outside"] == 50 and stats["lps_solved"] == 0
    # the centre of the unit cube is inside the hull of 500 uniform points
    assert geo.in_hull(torch.full((1, 4), 0.5, dtype=torch.float64), x).all()


def test_float32_midpoints_on_the_boundary_are_inside_and_points_just_beyond_it_are_not():
    """In 32-d every one of 400 codes is a vertex, so midpoints of pairs lie on the hull's edges; rounded to
    float32 most of them land a hair outside, which must not count (the explorer drew them as outside)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 32, generator=g) * 3 + 5                       # float32, away from the origin
    a, b = x[:40], x[40:80]
    mid = (a + b) / 2
    assert geo.in_hull(mid, x).all()
    assert geo.in_hull(interpolate("slerp", a, b, torch.linspace(0, 1, 5))[:, [0, -1]].reshape(-1, 32), x).all()
    # the same midpoints pushed out along the direction from the mean, by 1e-4 of the spread: outside
    centre = x.mean(0)
    beyond = mid + 1e-4 * 3 * (mid - centre) / (mid - centre).norm(dim=1, keepdim=True)
    np.testing.assert_array_equal(geo.in_hull(beyond.double(), x.double()), geo.in_hull_linprog(beyond, x))
    assert not geo.in_hull(beyond, x).any()
    # float64 keeps its own precision: 1e-10 outside an edge is outside there
    x64 = x.double()
    edge = (x64[:40] + x64[40:80]) / 2
    assert geo.in_hull(edge, x64).all()
    assert not geo.in_hull(edge + 1e-6 * (edge - x64.mean(0)), x64).any()


def test_the_rounding_allowed_is_each_querys_own_and_a_few_ulps_in_every_coordinate():
    """A far query in the batch must not loosen the others (it set one tolerance for all), and codes far from
    the origin with a small spread must not be let in by d times their rounding (the box-bounded LP)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 16, generator=g) * 0.01 + 1000                 # float32: an ulp is 6e-5 here
    mid = (x[:40] + x[40:80]) / 2
    centre = x.mean(0)
    beyond = mid + 0.2 * 0.03 * (mid - centre) / (mid - centre).norm(dim=1, keepdim=True)   # 20 % of the spread
    reference = geo.in_hull(beyond.double(), x.double())                 # float64: no rounding to allow
    assert not reference.any()
    np.testing.assert_array_equal(geo.in_hull(beyond, x), reference)
    with_far = geo.in_hull(torch.cat([beyond, torch.full((1, 16), 1e6)]), x)
    np.testing.assert_array_equal(with_far[:-1], reference)
    assert geo.in_hull(mid, x).all() and not with_far[-1]


def test_hull_validation():
    with pytest.raises(ValueError, match="queries"):
        geo.in_hull(np.zeros((2, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="finite"):
        geo.in_hull(np.full((1, 2), np.nan), np.zeros((3, 2)))


def test_hull_fraction_falls_with_dimension():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(600, 24, generator=g, dtype=torch.float64).numpy()
    test = torch.randn(100, 24, generator=g, dtype=torch.float64).numpy()
    curve = geo.hull_fraction_vs_dim(train, test, [2, 12, 24], n_query=40, generator=g)
    assert curve["dim"] == [2, 12, 24]
    assert curve["test"][0] > 0.8 and curve["test"][-1] < 0.1
    assert curve["train"][0] > 0.8 and curve["train"][-1] < 0.1


def test_distance_stats_against_scipy():
    from scipy.spatial.distance import cdist
    from scipy.stats import pearsonr

    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 3, generator=g, dtype=torch.float64)
    x = torch.cat([z, 0.01 * torch.randn(60, 5, generator=g, dtype=torch.float64)], 1).reshape(60, 1, 2, 4)
    s = geo.distance_stats(z, x, n_pairs=300, generator=g)
    d = cdist(z.numpy(), z.numpy())
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(s["nn_latent"], d.min(axis=1))
    assert s["pearson"] == pytest.approx(pearsonr(s["pair_latent"], s["pair_pixel"])[0])
    assert s["pearson"] > 0.99 and s["nn_agreement"] > 0.9


def test_axis_walk_kl_active_units():
    z = torch.zeros(3)
    star = geo.axis_walk(z, torch.eye(3), torch.tensor([-2.0, 0.0, 2.0]))
    assert star.shape == (3, 3, 3)
    torch.testing.assert_close(star[1, 2], torch.tensor([0.0, 2.0, 0.0]))
    mu = np.array([[1.0, 0.0], [-1.0, 0.0]])
    lv = np.array([[0.0, np.log(2.0)], [0.0, np.log(2.0)]])
    np.testing.assert_allclose(geo.kl_per_dim(mu, lv), [0.5, 0.5 * (2 - 1 - np.log(2))])
    assert np.isnan(geo.kl_per_dim(mu, None)).all()
    activity, n_active = geo.active_units(mu)
    np.testing.assert_allclose(activity, [1.0, 0.0])
    assert n_active == 1
    dirs, std = geo.principal_directions(torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 1.0], [0.0, -1.0]]), 1)
    torch.testing.assert_close(dirs.abs(), torch.tensor([[1.0, 0.0]]))


def test_normality_and_bic_tell_one_gaussian_from_two():
    g = torch.Generator().manual_seed(0)
    one = torch.randn(600, 3, generator=g, dtype=torch.float64).numpy()
    two = np.vstack([one[:300] - 4, one[300:] + 4])
    assert geo.normality(one)["mardia_kurtosis_p"] > 0.01
    assert geo.normality(two)["mardia_kurtosis_p"] < 0.01
    assert geo.gmm_bic_curve(one, [1, 2, 3])["best_k"] == 1
    curve = geo.gmm_bic_curve(two, [1, 2, 3])
    assert curve["best_k"] == 2 and len(curve["bic"]) == 3 and not curve["at_edge"]
    assert geo.gmm_bic_curve(two, [1, 2])["at_edge"]                   # the best is the largest k tried
    unsorted = geo.gmm_bic_curve(two, [3, 1, 2])
    assert unsorted["k"] == [1, 2, 3] and unsorted["best_k"] == 2       # each k beside its own BIC
    with pytest.raises(ValueError, match=r"ks: expected at least one"):
        geo.gmm_bic_curve(two, [])
    # no grid: the gmm sampler's k=auto grid on these codes, so that both name the same k
    from latentatlas.latent.samplers.gmm_select import auto_grid

    auto = geo.gmm_bic_curve(two)
    assert auto["k"] == auto_grid(600, 3) == [1, 2, 5, 10, 20, 50] and auto["best_k"] == 2


def test_reprojection_drift_closed_form():
    # decode then encode multiplies by 0.5: the code halves at each iteration
    z = torch.tensor([[4.0, 0.0]])
    out = geo.reprojection_drift(lambda x: x * 0.5, lambda zz: zz, z, n_iter=3)
    np.testing.assert_allclose(out["step"], [2.0, 1.0, 0.5])
    np.testing.assert_allclose(out["from_start"], [2.0, 3.0, 3.5])
    assert out["codes"].shape == (4, 1, 2)


@pytest.mark.parametrize("method,k", [(m, k) for m in maps.available_methods() for k in (2, 3)
                                      if not (m == "tsne" and k == 3)])     # 3-D t-SNE: same code path, slow
def test_maps_shapes(method, k, tmp_path):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(80, 5, generator=g)
    pts = maps.embed(z, method, n_components=k)
    assert pts.shape == (80, k) and np.isfinite(pts).all()
    if method == "pca":
        from sklearn.decomposition import PCA

        ref = PCA(k).fit_transform(z.double().numpy())
        np.testing.assert_allclose(np.abs(pts), np.abs(ref), atol=1e-6)
        assert save_scatter(tmp_path / "m.png", pts, np.arange(80) % 3).stat().st_size > 0


def test_maps_validation():
    with pytest.raises(ValueError, match="method"):
        maps.embed(np.zeros((5, 2)), "nope")
    with pytest.raises(ValueError, match="n_components"):
        maps.embed(np.zeros((5, 2)), "pca", n_components=4)
