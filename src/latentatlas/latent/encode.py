"""Encode images to latent codes and decode codes to images, in batches, without gradients."""

from __future__ import annotations

import torch
from torch import nn

from latentatlas.data.base import to_float


@torch.no_grad()
def encode_images(model: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, C, H, W), or float in [0, 1] -> posterior means (N, d) and log-variances (N, d)
    or None (AE), on the CPU."""
    model.eval()
    means, logvars = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size]
        post = model.encode((to_float(x) if x.dtype == torch.uint8 else x.float()).to(device))
        means.append(post.mean.float().cpu())
        if post.logvar is not None:
            logvars.append(post.logvar.float().cpu())
    mean = torch.cat(means) if means else torch.empty(0, model.latent_dim)
    return mean, (torch.cat(logvars) if logvars else None)


@torch.no_grad()
def decode_codes(model: nn.Module, z: torch.Tensor, *, batch_size: int = 512,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Codes (N, d) -> images float32 (N, C, H, W) in [0, 1], on the CPU."""
    model.eval()
    out = [model.decode(z[start:start + batch_size].to(device, torch.float32)).float().cpu()
           for start in range(0, z.shape[0], batch_size)]
    return torch.cat(out)
