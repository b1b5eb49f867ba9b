"""Every training path, sampler and device-aware metric on each available device: the CPU always, CUDA
when a GPU is present (a session with a lent GPU runs this file first: bench/gpu_session.sh).  On the CPU
they check that an explicit device and precision are honoured end to end; on CUDA they are issue 14's
"every sampler, metric and training path on CUDA"."""

from __future__ import annotations

import pytest
import torch
import yaml

from latentatlas.config import PRECISIONS, TrainConfig
from latentatlas.data.base import ImageDataset, assign_split
from latentatlas.latent.samplers import SAMPLERS
from latentatlas.metrics import features_to_stats, frechet, prdc
from latentatlas.metrics.frechet import FrechetReference
from latentatlas.models import MODELS
from latentatlas.training import load_checkpoint, load_model, train
from tests.latent.samplers.small import small
from tests.models.small import N_CLASSES, SHAPE, small_model

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _labelled_images(n: int = 48) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(n, *SHAPE, generator=g) * 255).to(torch.uint8)
    data = ImageDataset("tiny", images, labels=torch.arange(n) % N_CLASSES)
    return assign_split(data, seed=0, val_fraction=0.2, test_fraction=0.1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", MODELS.names())
def test_every_family_trains_at_every_precision(tmp_path, family, precision, device):
    model = small_model(family)
    cfg = TrainConfig(epochs=2, batch_size=12, lr=1e-3, patience=None, device=device, progress=False,
                      precision=precision)
    result = train(model, _labelled_images(), cfg, tmp_path, seed=0)
    assert torch.device(result.device).type == device
    losses = [v for line in result.history for k, v in line.items() if k.startswith("train_") and k.endswith("loss")]
    assert losses and all(torch.isfinite(torch.tensor(losses))), losses
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert all(v.dtype == torch.float32 for v in saved["model"].values() if v.is_floating_point())
    reloaded = load_model(tmp_path / "checkpoints" / "last.pt")          # onto the CPU, whatever trained it
    assert all(p.device.type == "cpu" for p in reloaded.parameters())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SAMPLERS.names())
def test_every_sampler_fits_and_samples_on_the_codes_device(name, device):
    g = torch.Generator().manual_seed(0)
    if SAMPLERS.get(name).code_kind == "continuous":
        codes = torch.randn(200, 3, generator=g) + 4.0 * (torch.arange(200) % 2)[:, None]
    else:                                                                 # code grids of a VQ-VAE
        codes = torch.randint(4, (200, 3, 3), generator=g)
    sampler = small(name).fit(codes.to(device), generator=g)
    a = sampler.sample(40, generator=torch.Generator().manual_seed(1))
    b = sampler.sample(40, generator=torch.Generator().manual_seed(1))
    assert a.device.type == device and a.dtype == codes.dtype and a.shape[1:] == codes.shape[1:]
    assert torch.equal(a, b)                                              # same seed, same draws, on any device
    if a.is_floating_point():
        assert torch.isfinite(a).all()
    else:
        assert int(a.min()) >= 0 and int(a.max()) < 4


@pytest.mark.parametrize("device", DEVICES)
def test_metrics_on_the_device_equal_the_cpu_values(device):
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(600, 8, generator=g), torch.randn(500, 8, generator=g) * 1.2 + 0.3
    real[:, 0] = 0.5                                   # a zero-variance feature: S1's factor drops its row
    on_cpu = prdc(real, fake, k=5)
    assert prdc(real, fake, k=5, device=device) == pytest.approx(on_cpu, abs=4e-3)   # a radius tie at most
    expected = frechet(features_to_stats(real.double()), features_to_stats(fake.double()))
    stats = features_to_stats(real.double().to(device)), features_to_stats(fake.double().to(device))
    assert frechet(*stats) == pytest.approx(expected, rel=1e-6)
    assert frechet(FrechetReference(stats[0]), stats[1]) == pytest.approx(expected, rel=1e-6)
    assert FrechetReference(stats[0]).factor.device.type == device          # computed where the statistics are


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the CPU pipeline is tests/runs)")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_whole_chain_on_cuda(tmp_path, precision):
    from latentatlas.cli import main
    from latentatlas.runs.store import Run

    config = {"name": "tiny", "seed": 0, "runs_dir": str(tmp_path), "data": {"name": "mnist", "limit": 400},
              "model": {"family": "vae", "latent_dim": 4, "width": 8},
              "train": {"epochs": 2, "batch_size": 64, "progress": False, "device": "cuda", "precision": precision},
              "sample": {"samplers": ["prior", "gmm:k=2,covariance=full", "ddpm:iters=60,steps=10"], "n": 64},
              "evaluate": {"metrics": ["frechet", "prdc"], "n_real": 1000}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "tiny.yaml")]) == 0
    metrics = Run.open(tmp_path / "tiny").read_metrics()
    assert metrics["train"]["device"].startswith("cuda") and len(metrics["evaluate"]) >= 3
    assert all(0 < scores["frechet"] < float("inf") for scores in metrics["evaluate"].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (on the CPU the default is the mixed EM)")
def test_the_default_gmm_runs_the_float64_em_on_a_gpu():
    from latentatlas.latent.samplers import GMM
    from latentatlas.latent.samplers.gmm import MIXED_MIN_WORK

    g = torch.Generator().manual_seed(0)
    codes = (torch.randn(20000, 16, generator=g) + 3.0 * (torch.arange(20000) % 7)[:, None]).cuda()
    k = 40
    assert 20000 * k * (16 + 16 * 17 // 2) >= MIXED_MIN_WORK       # big enough for the screen on a CPU
    fits = [GMM(k=k, dtype=dtype, seed=0).fit(codes) for dtype in ("mixed", "float64")]
    assert fits[0].n_iter_ == fits[1].n_iter_ and torch.equal(fits[0].means_, fits[1].means_)


@pytest.mark.parametrize("device", DEVICES)
def test_a_gmm_fit_is_the_same_on_every_run(device):
    from latentatlas.latent.samplers import GMM

    g = torch.Generator().manual_seed(0)
    codes = (torch.randn(20000, 8, generator=g) + 3.0 * (torch.arange(20000) % 7)[:, None]).to(device)
    fits = [GMM(k=30, seed=0).fit(codes) for _ in range(2)]
    assert fits[0].n_iter_ == fits[1].n_iter_ and torch.equal(fits[0].means_, fits[1].means_)
