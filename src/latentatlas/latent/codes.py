"""Codes for the latent tools: the one place that turns images into codes and codes into images.

Every stage after training asks this module, never ``model.encode``: a model with an encoder (AE, VAE)
is encoded (posterior means and log-variances); a model without one (a GAN) is inverted by an
:class:`~latentatlas.latent.inversion.Inverter` (an encoder trained after the generator, then per-image
optimisation).  :class:`CodeMap` holds the choice; ``codes.method`` in the run config makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from latentatlas.data.base import to_float
from latentatlas.models.base import checked_labels
from latentatlas.tensors import map_rows

METHODS = ("auto", "encoder", "inversion")


def resolve_method(model: nn.Module, requested: str = "auto") -> str:
    """'encoder' or 'inversion' for ``model``: 'auto' picks the encoder when the model has one."""
    if requested not in METHODS:
        raise ValueError(f"codes.method: expected one of {METHODS}, got {requested!r}")
    if not callable(getattr(model, "decode", None)):
        raise ValueError(f"codes.method: {type(model).__name__} cannot decode, so it has no codes to find "
                         "(inversion needs a decoder or generator)")
    has_encoder = bool(getattr(model, "has_encoder", callable(getattr(model, "encode", None))))
    if requested == "encoder" and not has_encoder:
        raise ValueError(f"codes.method: 'encoder' asked, but the {model.config.family!r} model has no encoder; "
                         "use 'inversion' (or 'auto')")
    if requested == "auto":
        return "encoder" if has_encoder else "inversion"
    return requested


def _floats(x: torch.Tensor) -> torch.Tensor:
    return to_float(x) if x.dtype == torch.uint8 else x.float()


def labels_for(model: nn.Module, labels: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """``labels`` (rows,) as long on the CPU, their range checked, for a conditional model; None for an
    unconditional one.  (Checked once here, so that the batches can run within :func:`checked_labels`, which
    reads no batch's range.)"""
    if not getattr(model, "conditional", False):
        return None
    if labels is None:
        raise ValueError(f"labels: the conditional {model.config.family!r} model needs a class label per code")
    return model.check_labels(labels.cpu(), rows)


@torch.no_grad()
def encode_images(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None, *,
                  batch_size: int = 512,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, C, H, W) or float in [0, 1] [and labels (N,)] -> posterior means (N, d) and
    log-variances (N, d) or None (AE), on the CPU, through the model's encoder; for a model with discrete
    codes (VQ-VAE), its code grids (N, h, w) long and None."""
    model.eval()

    def encode(x: torch.Tensor, y: torch.Tensor | None):
        post = model.encode(_floats(x)) if y is None else model.encode(_floats(x), y)
        if isinstance(post, torch.Tensor):     # discrete codes: the index grids themselves
            return post, None
        return post.mean.float(), None if post.logvar is None else post.logvar.float()
    y = labels_for(model, labels, images.shape[0])
    with checked_labels():
        return map_rows(encode, images, y, batch_size=batch_size, device=device)


@torch.no_grad()
def decode_codes(model: nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = 512,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Codes (N, d) (or integer code grids (N, h, w)) [and labels (N,)] -> images float32 (N, C, H, W) in
    [0, 1], on the CPU."""
    model.eval()

    def decode(code: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        code = code.float() if code.is_floating_point() else code.long()
        return (model.decode(code) if y is None else model.decode(code, y)).float()
    y = labels_for(model, labels, z.shape[0])
    with checked_labels():
        return map_rows(decode, z, y, batch_size=batch_size, device=device)


@dataclass
class CodeMap:
    """Images <-> codes for one model: ``encode`` through its encoder, or through ``inverter``.

    ``method`` is 'encoder' or 'inversion'; ``details`` records how (written into latents.npz)."""

    model: nn.Module
    method: str = "encoder"
    inverter: Any = None
    device: torch.device | str = "cpu"
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method == "inversion" and self.inverter is None:
            raise ValueError("codes: inversion needs a fitted Inverter (latentatlas.latent.inversion)")

    def encode(self, images: torch.Tensor, labels: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (N, C, H, W) uint8 or float in [0, 1] -> (codes (N, d), log-variances (N, d) or None)."""
        if self.method == "encoder":
            return encode_images(self.model, images, labels, device=self.device)
        return self.inverter.invert(self.model, images, labels, device=self.device), None

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (N, d) -> images float32 (N, C, H, W) in [0, 1] on the CPU."""
        return decode_codes(self.model, z, labels, device=self.device)
