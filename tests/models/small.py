"""The small model of every family for the contract and device tests: 16x16 grey images, 4 classes."""

from __future__ import annotations

import dataclasses

import torch

from latentatlas.models import MODELS, GenerativeModel, build_model, model_config

SHAPE = (1, 16, 16)
N_CLASSES = 4


def small_model(family: str, seed: int = 0) -> GenerativeModel:
    """Family ``family`` at width 8 (6-d codes; InfoGAN 16 for its categorical and continuous parts), with
    its EMA generator where it has one; built under ``seed`` without touching the global generator."""
    extra = {"latent_dim": 16} if family == "infogan" else {"latent_dim": 6}
    if "ema_decay" in {f.name for f in dataclasses.fields(MODELS.get(family).config)}:
        extra["ema_decay"] = 0.9
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model(model_config(family, width=8, **extra), SHAPE, n_classes=N_CLASSES)
