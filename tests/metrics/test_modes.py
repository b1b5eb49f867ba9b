"""Class coverage, the ring-of-Gaussians mode statistics, the collapse detector and code-class matching."""

from __future__ import annotations

import math

import pytest
import torch

from latentatlas.metrics.modes import CollapseDetector, class_coverage, matched_error, ring_centres, ring_modes


def test_class_coverage_closed_form():
    real = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    fake = torch.tensor([0] * 6 + [1] * 4)                 # class 2 dropped
    out = class_coverage(fake, real)
    assert out["classes_covered"] == 2 and out["n_classes"] == 3 and out["class_shares"] == [0.6, 0.4, 0.0]
    q = torch.tensor([6.5, 4.5, 0.5], dtype=torch.float64) / 11.5
    assert out["class_kl"] == pytest.approx(float((real * (real / q).log()).sum()), rel=1e-12)
    # a class at 2.5 % of a 50 % real share is not covered (under a tenth of its share)
    assert class_coverage(torch.tensor([0] * 39 + [1] * 1), torch.tensor([0.5, 0.5]))["classes_covered"] == 1
    with pytest.raises(ValueError, match="real_probs: expected K >= 1 probabilities summing to 1"):
        class_coverage(fake, torch.tensor([0.5, 0.2]))
    with pytest.raises(ValueError, match=r"fake_classes: expected at least one class index in \[0, 3\)"):
        class_coverage(torch.tensor([3]), real)


def test_ring_modes_counts_covered_modes_and_quality():
    centres = ring_centres(8, 2.0)
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    good = centres[torch.arange(800) % 8] + 0.02 * torch.randn(800, 2, generator=g, dtype=torch.float64)
    out = ring_modes(good, centres, 0.02)
    assert out["modes_covered"] == 8 and out["high_quality_fraction"] > 0.98 and out["mode_kl"] < 0.01
    two = centres[torch.arange(800) % 2] + 0.02 * torch.randn(800, 2, generator=g, dtype=torch.float64)
    assert ring_modes(two, centres, 0.02)["modes_covered"] == 2
    noise = torch.zeros(100, 2, dtype=torch.float64)         # all at the centre: far from every mode
    assert ring_modes(noise, centres, 0.02) == {"modes_covered": 0, "n_modes": 8, "high_quality_fraction": 0.0}


def test_collapse_detector_names_each_symptom():
    real = torch.full((10,), 0.1)
    healthy = class_coverage(torch.arange(1000) % 10, real)
    detector = CollapseDetector()
    assert detector.update(healthy, recall=0.6) is None
    assert detector.update(healthy, recall=0.5) is None
    message = detector.update(class_coverage(torch.arange(1000) % 3, real), recall=0.2)
    assert message.startswith("mode collapse: samples cover 3 of 10 classes (KL to the real class distribution")
    assert "recall fell to 0.200 from a best of 0.600" in message
    # one dropped class of ten is flagged by coverage (the KL alone, 0.44 nats here, stays under 0.5)
    nine = class_coverage(torch.arange(1000) % 9, real)
    assert nine["class_kl"] < 0.5 and "cover 9 of 10 classes" in CollapseDetector().update(nine)
    uneven = class_coverage(torch.cat([torch.zeros(700), torch.arange(300) % 10]).long(), real)
    assert uneven["classes_covered"] == 10 and uneven["class_kl"] > 0.5     # 73 % of the samples are one class
    assert CollapseDetector().update(uneven) is not None


def test_matched_error_finds_the_best_permutation():
    codes = torch.arange(300) % 3
    classes = (codes + 1) % 3                      # a relabelling: no error
    out = matched_error(codes, classes)
    assert out["error"] == 0.0 and out["mapping"] == {0: 1, 1: 2, 2: 0}
    classes[:30] = 2              # rows 0..29 (10 of each code) all say class 2: the 10 of code 1 stay right
    assert matched_error(codes, classes)["error"] == pytest.approx(20 / 300)
    assert math.isclose(matched_error(torch.tensor([0, 0, 1, 1]), torch.tensor([5, 5, 5, 5]))["error"], 0.5)


class RingSampler(torch.nn.Module):
    """A stand-in generator for the ring: code -> a point near mode floor(8 Phi(z_0)) (only the first
    ``modes`` modes when collapsed), as a (2, 1, 1) image."""

    latent_dim = 3

    def __init__(self, modes: int = 8) -> None:
        super().__init__()
        self.modes = modes

    def decode(self, z):
        from latentatlas.data.toy import points_to_images

        mode = (torch.special.ndtr(z[:, 0]) * self.modes).floor().clamp(max=self.modes - 1).long()
        points = ring_centres(8, 2.0)[mode] + 0.02 * z[:, 1:3].double()
        return points_to_images(points).float() / 255


def test_the_monitor_stays_quiet_on_a_healthy_ring_generator_and_names_a_collapsed_one():
    from latentatlas.config import DataConfig
    from latentatlas.data import load_dataset
    from latentatlas.metrics.monitor import SampleMonitor

    data = load_dataset(DataConfig(name="ring", options={"n": 4000}), seed=0)
    monitor = SampleMonitor(data.part("val"), n=1000, extractor="ring", train=data.part("train"))
    assert monitor.extractor.weights_hash == "ring-8-2"
    healthy = monitor.on_epoch_end(1, RingSampler(8))
    assert healthy["monitor_classes_covered"] == 8 and "monitor_collapse" not in healthy
    collapsed = monitor.on_epoch_end(2, RingSampler(2))
    assert collapsed["monitor_classes_covered"] == 2
    assert collapsed["monitor_collapse"].startswith("mode collapse: samples cover 2 of 8 classes")
    assert collapsed["monitor_frechet"] > healthy["monitor_frechet"]
