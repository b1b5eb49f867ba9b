"""The mode-collapse benchmark (issue 8): `gan` and `wgan-gp` with MLP networks on a ring of 8 Gaussians
(radius 2, standard deviation 0.02, 20,000 points; data name `ring`), through the latentatlas trainer.

Every ``--every`` epochs it prints the modes covered (a mode counts when at least 1 % of 2,500 samples are
high-quality samples of it) and the fraction of high-quality samples (within 3 standard deviations of a
mode), with the collapse detector's verdict on the modes of the high-quality samples.  Usage:
    python bench/ring_modes.py [--epochs 200] [--every 25] [--families gan,wgan-gp]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from latentatlas.config import DataConfig, TrainConfig
from latentatlas.data import load_dataset
from latentatlas.data.toy import images_to_points
from latentatlas.metrics.modes import CollapseDetector, class_coverage, ring_centres, ring_modes
from latentatlas.models import build_model, model_config
from latentatlas.training import train

FAMILIES = {"gan": {"latent_dim": 8, "width": 256},
            "wgan-gp": {"latent_dim": 8, "width": 256, "architecture": "mlp", "betas": (0.5, 0.9)}}
LR = {"gan": 1e-4, "wgan-gp": 1e-4}


class ModeProbe:
    """A trainer callback: every ``every`` epochs, the mode statistics of 2,500 fixed prior draws."""

    def __init__(self, every: int, std: float) -> None:
        self.every, self.std, self.rows = every, std, []
        self.centres = ring_centres(8, 2.0)
        self.detector = CollapseDetector()
        self.started = time.perf_counter()

    @torch.no_grad()
    def on_epoch_end(self, epoch, model):
        if epoch % self.every:
            return None
        points = images_to_points(model.generate(2500, generator=torch.Generator().manual_seed(0)))
        stats = ring_modes(points, self.centres, self.std)
        distance, nearest = torch.cdist(points, self.centres.double()).min(1)
        good = nearest[distance <= 3 * self.std]          # the detector sees the modes of high-quality samples
        verdict = self.detector.update(class_coverage(good, torch.full((8,), 1 / 8, dtype=torch.float64))) \
            if good.numel() else "mode collapse: no high-quality sample"
        self.rows.append({"epoch": epoch, "seconds": time.perf_counter() - self.started, **stats,
                          "collapse": verdict or "healthy"})
        print(f"  epoch {epoch:4d} ({self.rows[-1]['seconds']:5.0f} s): modes {stats['modes_covered']}/8, "
              f"high-quality {stats['high_quality_fraction']:.3f}; detector: {verdict or 'healthy'}", flush=True)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--families", default="gan,wgan-gp")
    args = parser.parse_args()
    data = load_dataset(DataConfig(name="ring", options={"n": 20000, "std": 0.02}), seed=0)
    for family in args.families.split(","):
        torch.manual_seed(0)
        model = build_model(model_config(family, **FAMILIES[family]), data.image_shape)
        probe = ModeProbe(args.every, 0.02)
        cfg = TrainConfig(epochs=args.epochs, batch_size=256, lr=LR[family], patience=None, progress=False,
                          device="cpu", precision="fp32")   # the recorded figures' precision on any machine
        print(f"{family}: MLP width 256, latent 8, batch 256, lr {LR[family]}, fp32, {args.epochs} epochs of "
              f"{len(data.part('train'))} points", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            train(model, data, cfg, tmp, seed=0, callbacks=[probe])


if __name__ == "__main__":
    main()
