"""Differentiable augmentation for data-efficient GAN training (DiffAugment, Zhao et al. 2020).

The same random transformations are applied to real and generated images before the discriminator, and
they are differentiable, so the generator learns through them and does not learn to produce them.
Policies (comma-separated, applied in this order): ``color`` (brightness, saturation, contrast),
``translation`` (shift by up to 1/8 of the side, zero padding) and ``cutout`` (a zeroed square of half the
side).  Images are (B, C, H, W) centred in [-1, 1], as the discriminator sees them.  Draws are made with
:func:`~latentatlas.models.base.batch_rand` from the caller's generator (sharded under data parallelism).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from latentatlas.models.base import batch_rand

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'translation,cutout' -> ('translation', 'cutout'); '' -> (); unknown names are a ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"model.diff_augment: expected a comma-separated subset of {POLICIES}, got {policy!r}")
    return names


def _uniform(x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return batch_rand((x.shape[0], *shape), generator=generator, dtype=x.dtype, device=x.device)


def _randint(x: torch.Tensor, generator: torch.Generator | None, low: int, high: int) -> torch.Tensor:
    """Per-sample integers in [low, high] (B, 1, 1) on x's device."""
    u = _uniform(x, generator, 1, 1)
    return (u * (high - low + 1)).floor().long().clamp_(max=high - low) + low


def color(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    x = x + (_uniform(x, generator, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator, 1, 1, 1) + 0.5) + mean


def _grids(x: torch.Tensor, h: int, w: int):
    return torch.meshgrid(torch.arange(x.shape[0], device=x.device), torch.arange(h, device=x.device),
                          torch.arange(w, device=x.device), indexing="ij")


def translation(x: torch.Tensor, generator: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    _, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dh, dw = _randint(x, generator, -sh, sh), _randint(x, generator, -sw, sw)
    b, gh, gw = _grids(x, h, w)
    gh = (gh + dh + 1).clamp(0, h + 1)
    gw = (gw + dw + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[b, gh, gw].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, generator: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oh = _randint(x, generator, 0, h - 1 + (1 - ch % 2))
    ow = _randint(x, generator, 0, w - 1 + (1 - cw % 2))
    b, gh, gw = _grids(x, ch, cw)
    gh = (gh + oh - ch // 2).clamp(0, h - 1)
    gw = (gw + ow - cw // 2).clamp(0, w - 1)
    mask = torch.ones(x.shape[0], h, w, dtype=x.dtype, device=x.device)
    mask[b, gh, gw] = 0
    return x * mask.unsqueeze(1)


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None) -> torch.Tensor:
    """Apply the named augmentations (B, C, H, W) -> (B, C, H, W); the identity for an empty policy."""
    for name in policy:
        x = _FUNCTIONS[name](x, generator)
    return x
