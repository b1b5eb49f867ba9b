"""The training monitor: Fréchet distance of fixed decoded draws, logging keys and early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentatlas.metrics.features import build_extractor, extract_features, features_to_stats, reference_stats
from latentatlas.metrics.frechet import frechet
from latentatlas.metrics.monitor import SampleMonitor
from latentatlas.metrics.prdc import prdc


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
    mon = SampleMonitor(reference, every=2, n=200, seed=3, patience=2, extractor="pixels")
    logs = [mon.on_epoch_end(epoch, model) for epoch in range(1, 7)]   # completed epochs 1..6
    assert logs[0] is None and logs[2] is None and logs[4] is None
    assert set(logs[1]) == {"monitor_frechet", "monitor_frechet_best", "monitor_precision", "monitor_recall"}
    assert "stop" not in logs[3]                      # one evaluation without improvement
    assert logs[5]["stop"] is True                    # two: patience exhausted
    assert logs[5]["stop_reason"] == "the sample monitor's Fréchet distance did not improve in 2 evaluations"
    assert model.training                             # mode restored
    # the logged value is the Fréchet distance of the fixed draws
    ext = build_extractor("pixels")
    z = torch.randn(200, 4, generator=torch.Generator().manual_seed(3))
    x = (model.decode(z).detach().clamp(0, 1) * 255).round().to(torch.uint8)
    ref = reference_stats(reference, ext, split="monitor")
    fake = extract_features(ext, x)
    expected = frechet(ref.stats, features_to_stats(fake))
    assert logs[1]["monitor_frechet"] == pytest.approx(expected, rel=1e-9)
    pr = prdc(ref.features, fake, 3)
    assert (logs[1]["monitor_precision"], logs[1]["monitor_recall"]) == (pr["precision"], pr["recall"])


def test_monitor_tracks_improvement(reference):
    mon = SampleMonitor(reference, every=1, n=200, patience=1, extractor="pixels")
    worse = mon.on_epoch_end(1, LinearDecoder(scale=8.0))
    better = mon.on_epoch_end(2, LinearDecoder(scale=0.1))
    assert better["monitor_frechet"] < worse["monitor_frechet"]
    assert better["monitor_frechet_best"] == better["monitor_frechet"] and "stop" not in better


def test_monitor_validation(reference):
    with pytest.raises(ValueError, match="train.monitor_every: expected an int >= 1, got 0"):
        SampleMonitor(reference, every=0, extractor="pixels")
    with pytest.raises(ValueError, match="train.monitor_patience: expected an int >= 1 or None, got 0"):
        SampleMonitor(reference, patience=0, extractor="pixels")


class BrightnessClassifier(nn.Module):
    """Classifies an image by its mean brightness into 4 bins; features are (mean, std)."""

    name, weights_hash = "brightness", "fixed"

    def forward(self, x):
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], dim=1)

    def features_and_logits(self, x):
        level = (x.mean((1, 2, 3)) * 4).floor().clamp(0, 3).long()
        return self.forward(x), torch.nn.functional.one_hot(level, 4).double()


class BrightnessDecoder(nn.Module):
    """decode(z) -> a flat image of brightness sigmoid(3 z_0), or a constant 0.9 when collapsed."""

    latent_dim = 4

    def __init__(self, collapsed: bool = False) -> None:
        super().__init__()
        self.collapsed = collapsed
        self.scale = nn.Parameter(torch.tensor(3.0))

    def decode(self, z):
        level = torch.full_like(z[:, 0], 0.9) if self.collapsed else torch.sigmoid(self.scale * z[:, 0])
        return level.view(-1, 1, 1, 1).expand(-1, 1, 8, 8)


def test_monitor_reports_class_coverage_and_names_a_collapse(caplog):
    from latentatlas.data.base import ImageDataset

    levels = torch.linspace(0.01, 0.99, 400)
    images = (levels.view(-1, 1, 1, 1).expand(-1, 1, 8, 8) * 255).round().to(torch.uint8)
    labelled = ImageDataset("flat", images, labels=(levels * 4).floor().long())
    mon = SampleMonitor(labelled, n=400, extractor=BrightnessClassifier(), train=labelled)
    healthy = mon.on_epoch_end(1, BrightnessDecoder())
    assert healthy["monitor_classes_covered"] == 4 and healthy["monitor_class_kl"] < 0.1
    assert "monitor_collapse" not in healthy
    collapsed = mon.on_epoch_end(2, BrightnessDecoder(collapsed=True))
    assert collapsed["monitor_classes_covered"] == 1
    assert collapsed["monitor_collapse"].startswith("mode collapse: samples cover 1 of 4 classes")
    assert "recall fell" in collapsed["monitor_collapse"]
    assert any("mode collapse" in r.message for r in caplog.records if r.levelname == "WARNING")
