"""The checked arithmetic inside the ``attributes`` stage, on a synthetic run: codes whose first three
coordinates carry Smiling, Male and Eyeglasses (Smiling and Male agree on 90 % of the faces), a 'decoder'
that maps each coordinate to one pixel through a sigmoid, and a judge that reads those pixels."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from latentatlas.config import DataConfig, RunConfig
from latentatlas.data.base import ImageDataset, to_uint8
from latentatlas.models import model_config
from latentatlas.models.base import Posterior
from latentatlas.runs import analyses
from latentatlas.runs.report import write_report
from latentatlas.runs.store import Run

NAMES = ["Smiling", "Male", "Eyeglasses"]
N, N_TRAIN, N_TEST = 1500, 1000, 300


class SigmoidPixels(nn.Module):
    """decode: one pixel per code coordinate, sigmoid(z), as a 1 x 2 x 3 image; encode: the logit."""

    image_shape = (1, 2, 3)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z).reshape(len(z), *self.image_shape)

    def encode(self, x: torch.Tensor) -> Posterior:
        return Posterior(torch.logit(x.float().reshape(len(x), -1), eps=1e-4))


class PixelReader(nn.Module):
    """A stand-in for the celeba-attributes network: attribute j is seen when pixel j is above 0.5."""

    name = "pixel reader"
    attribute_names = list(NAMES)

    def attribute_probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(40 * (x.reshape(len(x), -1)[:, :3] - 0.5))


@pytest.fixture
def synthetic_run(tmp_path):
    rng = np.random.default_rng(0)
    smiling = rng.random(N) < 0.5
    male = np.where(rng.random(N) < 0.9, smiling, ~smiling)
    table = np.stack([smiling, male, rng.random(N) < 0.3], axis=1).astype(np.int8)
    z = np.concatenate([3.0 * table - 1.5 + 0.5 * rng.normal(size=(N, 3)), rng.normal(size=(N, 3))], axis=1)
    z = torch.from_numpy(z).float()
    split = np.repeat(np.array([0, 1, 2], dtype=np.int8), [N_TRAIN, N - N_TRAIN - N_TEST, N_TEST])
    model = SigmoidPixels()
    ds = ImageDataset("synthetic", to_uint8(model.decode(z)), attributes=torch.from_numpy(table),
                      attribute_names=list(NAMES), split=torch.from_numpy(split))
    cfg = RunConfig(name="arith", runs_dir=str(tmp_path), data=DataConfig(name="mnist"),
                    model=model_config("vae", latent_dim=6))
    run = Run.create(cfg)
    run.save_latents(z_mean=z.numpy(), split=split, attributes=table, attribute_names=np.array(NAMES))
    return run, model, ds


def test_stage_checks_the_pair_and_reports_it(synthetic_run):
    run, model, ds = synthetic_run
    out = analyses.attributes_stage(run, pairs=["Smiling/Male"], judge=PixelReader(), n_triples=120, n_judge=32,
                                    model=model, dataset=ds)
    assert out["judge"] == "pixel reader" and list(out["pairs"]) == ["Smiling/Male"]
    res = out["pairs"]["Smiling/Male"]
    assert res["n_triples"] == 120 and res["identity_attributes"] == ["Eyeglasses"]
    assert res["balanced"]["success"] > 0.9 > 0.2 > res["plain"]["success"]
    assert res["unchanged"]["a_present"] < 0.05
    assert out["Smiling"]["judge_auc_real"] > 0.95              # the judge reads the real images right
    assert json.loads(run.metrics_path.read_text())["attributes"]["pairs"]["Smiling/Male"]["balanced"] == \
        pytest.approx(res["balanced"])
    for fig in ("attr_pair_Smiling_Male.png", "attr_pair_Smiling_Male_sweep.png", "attr_judge.png"):
        assert (run.figures_dir / fig).is_file(), fig
    page = write_report(run).read_text()
    assert "Checked arithmetic" in page and "attr_pair_Smiling_Male_sweep.png" in page
    row = f"<td>Smiling/Male</td><td>balanced</td><td>{100 * res['balanced']['success']:.1f} ± "
    assert row in page
    with pytest.raises(ValueError, match="--pair"):
        analyses.attributes_stage(run, pairs=["Smiling/Smile"], judge=PixelReader(), model=model, dataset=ds)


def test_auto_judge_is_the_celeba_attributes_network(synthetic_run, monkeypatch):
    import latentatlas.metrics.features as features

    run, model, ds = synthetic_run
    calls = []

    def fake_build_extractor(name, *, dataset=None, device="cpu", seed=0, **kwargs):
        calls.append((name, len(dataset), dataset.attribute_names, seed))
        return PixelReader()

    monkeypatch.setattr(features, "build_extractor", fake_build_extractor)
    out = analyses.attributes_stage(run, pairs=["Smiling/Male"], n_triples=20, n_judge=8, seed=5, model=model,
                                    dataset=ds)
    # trained on the training split only, seeded like the run's other judges (its data seed), not the analysis
    assert run.config.data_seed != 5 and calls == [("celeba-attributes", N_TRAIN, NAMES, run.config.data_seed)]
    assert out["judge"] == "pixel reader" and out["pairs"]["Smiling/Male"]["n_triples"] == 20
