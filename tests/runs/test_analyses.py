"""The interpolate / attributes / geometry stages on real run folders (embedded MNIST, CelebA 10k).

Most tests use a PCA autoencoder (fitted in the test, no training): its decoder is linear up to
clipping, which gives closed forms to check (straight lines are geodesics, lerp has constant speed,
decode-encode returns the code)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from latentatlas.config import DataConfig, RunConfig
from latentatlas.models import model_config
from latentatlas.data import load_dataset, to_float
from latentatlas.latent.codes import encode_images
from latentatlas.models.base import Posterior
from latentatlas.runs import analyses
from latentatlas.runs.store import Run


class PCAAutoencoder(nn.Module):
    """encode: projection on the top-d principal directions; decode: back-projection, clipped to [0, 1]."""

    def __init__(self, images: torch.Tensor, latent_dim: int) -> None:
        super().__init__()
        x = to_float(images).reshape(len(images), -1)
        mean = x.mean(0)
        _, _, vt = torch.linalg.svd(x - mean, full_matrices=False)
        self.register_buffer("mean", mean)
        self.register_buffer("basis", vt[:latent_dim].T.contiguous())
        self.image_shape = tuple(images.shape[1:])
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> Posterior:
        return Posterior((x.reshape(len(x), -1) - self.mean) @ self.basis)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.basis.T + self.mean).clamp(0, 1).reshape(len(z), *self.image_shape)


def _make_run(tmp_path, data_cfg: DataConfig, latent_dim: int):
    cfg = RunConfig(name="t", runs_dir=str(tmp_path), data=data_cfg, model=model_config("vae", latent_dim=latent_dim))
    run = Run.create(cfg)
    ds = load_dataset(data_cfg, seed=0)
    model = PCAAutoencoder(ds.part("train").images, latent_dim)
    z, _ = encode_images(model, ds.images)
    arrays = {"z_mean": z.numpy(), "split": ds.split.numpy()}
    if ds.labels is not None:
        arrays["labels"] = ds.labels.numpy()
    if ds.attributes is not None:
        arrays.update(attributes=ds.attributes.numpy(), attribute_names=np.array(ds.attribute_names))
    run.save_latents(**arrays)
    return run, model, ds


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    return _make_run(tmp_path_factory.mktemp("runs"), DataConfig(name="mnist", limit=2000), 8)


def test_interpolate_stage(mnist_run):
    run, model, ds = mnist_run
    pooled = nn.Sequential(nn.AvgPool2d(4), nn.Flatten())      # 49 features: a cheap Fréchet distance
    out = analyses.interpolate_stage(run, n_pairs=8, steps=5, n_frechet=200, extractor=pooled,
                                     geodesic_pairs=3, geodesic_iters=30, learned_iters=10, model=model, dataset=ds)
    saved = json.loads(run.metrics_path.read_text())
    assert saved["interpolation"]["lerp"]["midpoint_fd"] == pytest.approx(out["lerp"]["midpoint_fd"])
    for name in ("lerp", "slerp", "norm"):
        res = out[name]
        assert res["midpoint_fd"] > 0 and 0 <= res["realism_mean"] <= 1
        # every path starts and ends at the codes of the pair: the same endpoint gap for all methods
        assert res["endpoint_gap_mse"] == pytest.approx(out["lerp"]["endpoint_gap_mse"], rel=1e-4)
    assert out["lerp"]["step_cv"] < 0.1                 # a linear decoder moves at constant speed on a line
    assert out["lerp"]["cycle_error_mean"] < 0.1 * float(model.encode(to_float(ds.images[:50])).mean.norm(dim=1).mean())
    geo = out["geodesic"]
    assert geo["geodesic_length"] <= geo["straight_length"] * 1.001
    assert geo["geodesic_length"] >= 0.97 * geo["straight_length"]      # for a linear decoder the line is the geodesic
    assert 0.97 <= geo["geodesic_vs_straight"] <= 1.001
    # the learned network starts as the straight line, which is already (nearly) shortest here
    assert 0.97 <= geo["learned_vs_straight"] <= 1.02 and 0.97 <= geo["learned_vs_straight_all_pairs"] <= 1.02
    assert geo["learned_vs_geodesic"] == pytest.approx(geo["learned_vs_straight"] / geo["geodesic_vs_straight"],
                                                       rel=0.03)
    assert saved["interpolation"]["geodesic"]["learned_vs_straight"] == pytest.approx(geo["learned_vs_straight"])
    for fig in ("interp_strips.png", "interp_methods.png", "interp_grid.png", "interp_realism.png",
                "interp_cycle.png", "interp_geodesic.png", "interp_barycentric.png", "interp_one_vs_many.png"):
        assert (run.figures_dir / fig).stat().st_size > 0
        assert fig in saved["figures"]
    _check_triangle(run.figures_dir / "interp_barycentric.png", n=7, size=28)


def _check_triangle(path, n: int, size: int, pad: int = 2, scale: int = 2) -> None:
    """The barycentric figure: (n + 1) x (n + 1) cells, blank (white) right of the diagonal only."""
    from PIL import Image

    img = np.asarray(Image.open(path))
    assert img.shape[:2] == (scale * ((n + 1) * (size + pad) + pad),) * 2
    cell = lambda r, c: img[scale * (pad + r * (size + pad)):scale * (pad + r * (size + pad) + size),  # noqa: E731
                            scale * (pad + c * (size + pad)):scale * (pad + c * (size + pad) + size)]
    for r in range(n + 1):
        for c in range(n + 1):
            assert (cell(r, c) == 255).all() == (c > r), (r, c)   # decoded digits have black background


def test_learned_interpolation_is_on_by_default():
    import inspect

    assert inspect.signature(analyses.interpolate_stage).parameters["learned_iters"].default > 0


def test_attributes_stage_on_digit_labels(mnist_run):
    run, model, ds = mnist_run
    out = analyses.attributes_stage(run, attributes=["label_0", "label_1"], n_judge=32, model=model, dataset=ds)
    assert out["source"] == "labels"
    for name in ("label_0", "label_1"):
        assert out[name]["auc_probe"] > 0.9 and out[name]["auc_mean"] > 0.8
        assert out[name]["judged"][-1] > out[name]["judged"][0]     # pushing along the vector adds the digit
    assert "p_label_0" in out["arithmetic"]
    assert (run.figures_dir / "attr_sweep_label_1.png").is_file()
    assert (run.figures_dir / "attr_arithmetic.png").is_file()
    with pytest.raises(ValueError, match="attributes"):
        analyses.attributes_stage(run, attributes=["Smiling"], model=model, dataset=ds)


def test_geometry_stage(mnist_run):
    run, model, ds = mnist_run
    out = analyses.geometry_stage(run, n_hull=300, n_query=30, dims=(2, 4, 8), n_distance=200, n_map=150,
                                  map_methods=("pca", "isomap"), n_walk=3, drift_codes=16, drift_iters=3,
                                  bic_ks=(1, 2, 3), model=model, dataset=ds)
    assert 0 <= out["hull_fraction_test"] <= 1 and 0 <= out["hull_fraction_train"] <= 1
    curve = out["hull_vs_dim_latent"]
    assert curve["dim"] == [2, 4, 8] and curve["test"][0] >= curve["test"][-1]
    assert "hull_vs_dim_pixel" in out
    assert out["active_units"] == 8 and out["pearson"] > 0.5
    # PCA: decode-encode returns the code up to the clipping of pixels to [0, 1] (about a tenth of a code's
    # length on all ten digits): a step well below the codes' size, but not zero
    code_norm = float(np.linalg.norm(run.load_latents()["z_mean"], axis=1).mean())
    assert 0 < out["drift_first_step"] < 0.2 * code_norm
    for fig in ("geom_units.png", "geom_hull_vs_dim.png", "geom_distances.png", "geom_walk_pca.png",
                "geom_walk_axes.png", "geom_bic.png", "geom_drift.png", "geom_map_pca.png", "geom_map_pca_3d.png",
                "geom_map_isomap.png"):
        assert (run.figures_dir / fig).is_file(), fig
    with pytest.raises(ValueError, match="map_methods"):
        analyses.geometry_stage(run, map_methods=("nope",), model=model, dataset=ds)


def test_stage_loads_checkpoint_and_dataset(tmp_path):
    from latentatlas.models import build_model
    from latentatlas.training.checkpoint import model_payload, save_checkpoint

    data_cfg = DataConfig(name="mnist", limit=400)
    cfg = RunConfig(name="ckpt", runs_dir=str(tmp_path), data=data_cfg,
                    model=model_config("vae", architecture="mlp", latent_dim=3, width=32))
    run = Run.create(cfg)
    ds = load_dataset(data_cfg, seed=cfg.seed)
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.image_shape)
    save_checkpoint(run.checkpoint_path("best"), model_payload(model))
    z, logvar = encode_images(model, ds.images)
    run.save_latents(z_mean=z.numpy(), z_logvar=logvar.numpy(), split=ds.split.numpy(), labels=ds.labels.numpy())
    out = analyses.geometry_stage(run, n_hull=100, n_query=20, dims=(2,), n_distance=50, n_map=60,
                                  map_methods=("pca",), n_walk=2, drift_codes=4, drift_iters=2, bic_ks=(1, 2))
    assert out["kl_total"] > 0 and out["latent_dim"] == 3
    assert "geometry" in run.read_metrics()


def test_attributes_stage_on_celeba(shared_data, tmp_path):
    cfg = DataConfig(name="celeba", root=str(shared_data / "celeba_10k"), limit=1500, image_size=32)
    run, model, ds = _make_run(tmp_path, cfg, 32)
    out = analyses.attributes_stage(run, attributes=["Smiling", "Male"], n_judge=32, judge="pixel", n_triples=100,
                                    model=model, dataset=ds)
    assert out["source"] == "attributes"
    for name in ("Smiling", "Male"):
        res = out[name]
        assert res["auc_probe"] > 0.6 and res["auc_balanced"] > 0.55 and res["judge_auc_real"] > 0.7
        assert res["judged"][-1] > res["judged"][0] + 0.2     # the classifier sees the attribute grow
        assert -1 <= res["cos_mean_balanced"] <= 1
    assert out["Male"]["auc_refined"] > 0.75 and out["balanced_on"] == ["Smiling", "Male"]
    assert list(out["pairs"]) == ["Smiling/Male", "Eyeglasses/Male", "Blond_Hair/Young"]
    smile = out["pairs"]["Smiling/Male"]
    assert out["judge"] == "pixel logistic regression" and smile["n_triples"] == 100
    assert "Male" not in smile["identity_attributes"] and "Young" in smile["identity_attributes"]
    # the balanced Smiling vector makes the judge see a smile more often than on the unchanged faces c
    assert smile["balanced"]["a_present"] > smile["unchanged"]["a_present"] + 0.1
    assert smile["unchanged"]["identity_kept"] == 1.0


def test_a_bic_grid_the_codes_cannot_fit_is_refused_by_name_before_any_work(mnist_run):
    run, model, ds = mnist_run
    before = {p: p.stat().st_mtime_ns for p in run.figures_dir.glob("geom_*.png")}
    with pytest.raises(ValueError, match=r"^bic_ks: expected a k below the \d+ codes fitted, got \[1000000\]$"):
        analyses.geometry_stage(run, bic_ks=(10**6,), model=model, dataset=ds)
    assert {p: p.stat().st_mtime_ns for p in run.figures_dir.glob("geom_*.png")} == before   # no figure drawn
