"""The Explorer on a tiny trained run: what each method returns, and that it refuses bad arguments by name."""

import numpy as np
import pytest
import torch

from latentatlas.data.base import SPLITS


def test_describe_lists_what_the_run_holds(explorer, gmm_name):
    info = explorer.describe()
    assert info["latent_dim"] == 4 and info["image_shape"] == [1, 28, 28]
    assert info["n_codes"] == info["n_points"] == 400 and sum(info["splits"].values()) == 400
    assert info["samplers"] == [gmm_name] and info["sampler_specs"] == {gmm_name: "gmm:k=3,covariance=full"}
    assert {"lerp", "slerp", "geodesic"} <= set(info["interpolation_methods"])
    names = [d["name"] for d in info["directions"]]
    assert names[:4] == ["pc1", "pc2", "pc3", "pc4"] and "label_3" in names
    assert info["directions"][0]["source"] == "PCA of the training codes"     # not the map's PCA of all points
    assert info["color_options"] == ["label", "split"]


@pytest.mark.parametrize("method", ["lerp", "slerp", "geodesic"])
def test_interpolation_runs_from_code_a_to_code_b(explorer, method, monkeypatch):
    monkeypatch.setattr("latentatlas.explore.explorer.GEODESIC_ITERS", 10)
    path = explorer.interpolate(5, 77, method=method, steps=6)
    assert path.shape == (6, 4)
    torch.testing.assert_close(path[0], explorer.code(5), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(path[-1], explorer.code(77), atol=1e-5, rtol=1e-5)


def test_geodesic_shortens_the_decoded_path(explorer, monkeypatch):
    from latentatlas.latent.geodesic import path_energy

    monkeypatch.setattr("latentatlas.explore.explorer.GEODESIC_ITERS", 20)
    energy = {m: float(path_energy(explorer.ctx.decode_grad, explorer.interpolate(5, 77, method=m, steps=6)[None]))
              for m in ("lerp", "geodesic")}
    assert energy["geodesic"] < energy["lerp"]


def test_move_along_a_principal_direction_shifts_the_projection_by_amount_sds(explorer):
    pc1 = explorer.direction("pc1")
    moved = explorer.move(10, "pc1", 2.0)
    shift = float((moved - explorer.code(10)) @ pc1.vector)
    assert shift == pytest.approx(2.0 * pc1.scale, rel=1e-4)
    spread = float((explorer.z_train @ pc1.vector).std())
    assert pc1.scale == pytest.approx(spread, rel=1e-3)        # the slider's unit is the codes' spread
    torch.testing.assert_close(explorer.move(10, "label_3", 0.0), explorer.code(10))


def test_mixture_component_samples_are_reproducible_and_near_their_mean(explorer, gmm_name):
    mixture = explorer.samplers[gmm_name]
    a = explorer.sample(gmm_name, 1, n=64, seed=3)
    assert a.shape == (64, 4)
    torch.testing.assert_close(a, explorer.sample(gmm_name, 1, n=64, seed=3))
    assert not torch.equal(a, explorer.sample(gmm_name, 1, n=64, seed=4))
    spread = float(mixture.component_variances()[1].sqrt())
    distance = float((a.double().mean(0) - mixture.means_[1]).norm())
    assert distance < spread                    # the mean of 64 draws is ~spread/4 from the component's mean
    weights = [c["weight"] for c in explorer.components(gmm_name)]
    assert sum(weights) == pytest.approx(1.0) and len(weights) == 3


def test_hull_flags_training_codes_inside_and_far_codes_outside(explorer):
    flags = explorer.points_outside_hull()
    train = explorer.ctx.split[explorer.points] == SPLITS.index("train")
    assert flags.shape == (400,) and not flags[train].any()
    far = explorer.z_train.abs().max() * 10 * torch.ones(1, 4)
    centre = explorer.z_train.mean(0, keepdim=True)
    assert explorer.outside_hull(torch.cat([far, centre])).tolist() == [True, False]


def test_maps_are_computed_once_per_method(explorer):
    xy = explorer.map("pca")
    assert xy.shape == (400, 2) and np.isfinite(xy).all()
    assert explorer.map("pca") is xy
    colors, names = explorer.colors("label")
    assert len(colors) == 400 and names == [str(c) for c in range(10)] and colors.max() == 9


def test_decode_batches_codes_into_images(explorer):
    images = explorer.decode(explorer.z[:5])
    assert images.shape == (5, 1, 28, 28) and 0 <= float(images.min()) and float(images.max()) <= 1
    torch.testing.assert_close(images[2:3], explorer.decode(explorer.code(2)))


@pytest.mark.parametrize("call, message", [
    (lambda ex: ex.code(400), r"^index: expected an int in \[0, 399\], got 400"),
    (lambda ex: ex.interpolate(0, 1, method="cubic"), r"^method: expected one of"),
    (lambda ex: ex.interpolate(0, 1, steps=65), r"^steps: expected an int in \[2, 64\]"),
    (lambda ex: ex.move(0, "pc9", 1.0), r"^direction: expected one of"),
    (lambda ex: ex.move(0, "pc1", 11.0), r"^amount: expected a finite number in \[-10.0, 10.0\]"),
    (lambda ex: ex.sample(next(iter(ex.samplers)), 3), r"^component: expected an int in \[0, 2\], got 3"),
    (lambda ex: ex.decode(torch.zeros(1, 3)), r"^z: expected 4 numbers per code"),
    (lambda ex: ex.decode(torch.tensor([[0.0, float("inf"), 0.0, 0.0]])), r"^z\[1\]: expected a finite number"),
    (lambda ex: ex.map("isomap"), r"^method: expected one of 'pca', 'tsne'"),
])
def test_bad_arguments_are_refused_by_name(explorer, call, message):
    with pytest.raises(ValueError, match=message):
        call(explorer)
