"""Self-describing checkpoints, written atomically and read with ``torch.load(..., weights_only=True)``.

A checkpoint (format 2) is a plain dict of tensors, numbers, strings, lists and dicts:

``format`` (2), ``model`` (state dict), ``model_config`` (the fields of the family's config dataclass),
``image_shape`` ([C, H, W]), ``n_classes`` (int or None), and for training checkpoints also ``optimizers`` ({phase: state dict}),
``epoch`` (epochs completed), ``step`` (optimizer steps, counting batches), ``best_score``,
``best_epoch``, ``bad_epochs``, ``generator_state`` (uint8 tensor), ``train_config`` (dict),
``history`` (one dict per epoch, the lines of metrics.jsonl) and ``callback_stop`` (bool).
Format 1 (AE/VAE only, one shared ModelConfig with an ``options`` dict) is read and migrated.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentatlas.fileio import torch_load, torch_save
from latentatlas.validate import check_finite

log = logging.getLogger(__name__)

FORMAT = 2
READABLE = (1, 2)
REQUIRED = ("format", "model", "model_config", "image_shape")


def model_payload(model: nn.Module) -> dict[str, Any]:
    """The model part of a checkpoint: format, state dict (on the CPU), config and image shape."""
    for attr in ("config", "image_shape"):
        if not hasattr(model, attr):
            raise TypeError(f"model: expected a latentatlas model with .{attr}, got {type(model).__name__}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "model": state, "model_config": dataclasses.asdict(model.config),
            "image_shape": [int(v) for v in model.image_shape], "n_classes": getattr(model, "n_classes", None)}


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    missing = [k for k in REQUIRED if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint: missing key(s) {missing}; build it from model_payload(model)")
    return torch_save(checkpoint, path)


def save_model(path: str | Path, model: nn.Module) -> Path:
    """Save only the model (no training state) in a checkpoint that :func:`load_model` reads."""
    return save_checkpoint(path, model_payload(model))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (weights_only, content hash verified).  FileNotFoundError if absent, ValueError
    if unreadable, damaged, foreign or holding non-finite weights."""
    ckpt = torch_load(path, "checkpoint", map_location=map_location)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED) or not isinstance(ckpt["model"], dict):
        raise ValueError(f"checkpoint: {str(path)!r} is not a latentatlas checkpoint (expected keys {list(REQUIRED)})")
    check_finite(f"checkpoint {str(path)!r} (model weights)", ckpt["model"])
    if ckpt["format"] not in READABLE:
        raise ValueError(f"checkpoint: {str(path)!r} has format {ckpt['format']!r}; this version reads {READABLE}")
    if ckpt["format"] == 1:
        from latentatlas.config import migrate_model_values

        ckpt["model_config"] = migrate_model_values(ckpt["model_config"])
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model of a loaded checkpoint dict (via ``build_model``) and load its weights; eval mode."""
    from latentatlas.config import model_config_from_dict
    from latentatlas.models import build_model

    try:
        cfg = model_config_from_dict(ckpt["model_config"], "checkpoint model_config")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint: its model_config cannot be read by this version: {exc}") from exc
    model = build_model(cfg, tuple(ckpt["image_shape"]), ckpt.get("n_classes"))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint file, weights loaded, in eval mode, on ``map_location``."""
    model = model_from_checkpoint(load_checkpoint(path, map_location))
    return model.to(map_location)
