"""The training monitor: Fréchet distance of fixed decoded draws, logging keys and early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentatlas.metrics.features import build_extractor, extract_features, features_to_stats, reference_stats
from latentatlas.metrics.frechet import frechet
from latentatlas.metrics.monitor import FrechetMonitor


class LinearDecoder(nn.Module):
    """decode(z) -> sigmoid(W z) as (B, 1, 8, 8) images in [0, 1]."""

    latent_dim = 4

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.linspace(-1, 1, 256).view(64, 4) * scale)
            self.lin.bias.zero_()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(z)).view(-1, 1, 8, 8)


@pytest.fixture
def reference():
    from latentatlas.data.base import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = (torch.rand(400, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    return ImageDataset("noise8", images)


def test_monitor_value_every_n_and_stop(reference):
    model = LinearDecoder()
    mon = FrechetMonitor(reference, every=2, n=200, seed=3, patience=2, extractor="pixels")
    logs = [mon.on_epoch_end(epoch, model) for epoch in range(1, 7)]   # completed epochs 1..6
    assert logs[0] is None and logs[2] is None and logs[4] is None
    assert set(logs[1]) == {"monitor_frechet", "monitor_frechet_best"}
    assert "stop" not in logs[3]                      # one evaluation without improvement
    assert logs[5]["stop"] is True                    # two: patience exhausted
    assert model.training                             # mode restored
    # the logged value is the Fréchet distance of the fixed draws
    ext = build_extractor("pixels")
    z = torch.randn(200, 4, generator=torch.Generator().manual_seed(3))
    x = (model.decode(z).detach().clamp(0, 1) * 255).round().to(torch.uint8)
    ref = reference_stats(reference, ext, split="monitor")
    expected = frechet(ref.stats, features_to_stats(extract_features(ext, x)))
    assert logs[1]["monitor_frechet"] == pytest.approx(expected, rel=1e-9)


def test_monitor_tracks_improvement(reference):
    mon = FrechetMonitor(reference, every=1, n=200, patience=1, extractor="pixels")
    worse = mon.on_epoch_end(1, LinearDecoder(scale=8.0))
    better = mon.on_epoch_end(2, LinearDecoder(scale=0.1))
    assert better["monitor_frechet"] < worse["monitor_frechet"]
    assert better["monitor_frechet_best"] == better["monitor_frechet"] and "stop" not in better


def test_monitor_validation(reference):
    with pytest.raises(ValueError, match="every"):
        FrechetMonitor(reference, every=0, extractor="pixels")
    with pytest.raises(ValueError, match="patience"):
        FrechetMonitor(reference, patience=0, extractor="pixels")
