"""Tiny deterministic datasets and models shared by the training tests and the DDP script."""

from __future__ import annotations

import torch

from latentatlas.config import TrainConfig
from latentatlas.data.base import ImageDataset, assign_split
from latentatlas.models import build_model, model_config


def tiny_dataset(n: int = 60, shape: tuple[int, int, int] = (1, 6, 6), seed: int = 0) -> ImageDataset:
    """Smooth-ish random uint8 images with a split (about 70% train, 20% val)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, *shape[1:], generator=g)
    images = (base.expand(n, *shape) * 255).round().to(torch.uint8).contiguous()
    return assign_split(ImageDataset("tiny", images), seed=seed, val_fraction=0.2, test_fraction=0.1)


def tiny_model(family: str = "vae", shape: tuple[int, int, int] = (1, 6, 6), seed: int = 0, **kw):
    """An MLP model initialised from ``seed`` without touching the caller's global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(model_config(family, architecture="mlp", latent_dim=2, width=16, **kw), shape)


class Kill:
    """A callback that simulates a crash at the end of epoch ``at`` (before that epoch's checkpoint)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, epoch, model):
        if epoch == self.at:
            raise KeyboardInterrupt("killed")


def tiny_train_config(**kw) -> TrainConfig:
    values = dict(epochs=3, batch_size=11, lr=1e-2, patience=None, device="cpu", progress=False,
                  checkpoint_overhead=None)   # last.pt after every epoch: the tests count the writes
    values.update(kw)
    return TrainConfig(**values)


def ddp_train_config() -> TrainConfig:
    """The settings the DDP test trains with, in the 2-process script and in the single process it compares:
    two epochs of :func:`tiny_train_config` with mirror flips on, in float32 (the comparison's tolerance is
    float32's; bf16 autocast differs by more between the two)."""
    return tiny_train_config(epochs=2, hflip=True, precision="fp32")


# the two-player model of the DDP and resume tests: two critic steps per generator step, an EMA generator
GAN_OPTIONS = {"n_critic": 2, "ema_decay": 0.9, "penalty": "r1", "penalty_weight": 1.0}


def family_options(family: str) -> dict:
    return GAN_OPTIONS if family == "gan" else {}
