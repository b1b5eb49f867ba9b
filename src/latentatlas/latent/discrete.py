"""Interpolating discrete codes: a codebook has no points between codes, so a path between two images is
taken between their continuous pre-quantisation encoder outputs ze (B, D, h, w) and every frame is
quantised again (``requantized_paths``); ``cell_changes`` counts how the code grid changes along it.
"""

from __future__ import annotations

import torch

from latentatlas.latent.interpolate import INTERPOLATORS


@torch.no_grad()
def requantized_paths(model, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, *, method: str = "lerp"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Paths from images x0 to x1 (B, C, H, W) in [0, 1] through a model with discrete codes (``encode_continuous``
    and ``decode`` of code grids): the pre-quantisation outputs interpolated with ``method`` at t (T,), each frame
    re-quantised.  -> (code grids (B, T, h, w) long, decoded frames (B, T, C, H, W))."""
    interpolate = INTERPOLATORS.get(method)
    ze0, ze1 = model.encode_continuous(x0), model.encode_continuous(x1)
    b, d, h, w = ze0.shape
    path = interpolate(ze0.reshape(b, -1), ze1.reshape(b, -1), t.to(ze0.dtype))       # (B, T, D h w)
    frames = path.reshape(b * t.numel(), d, h, w)
    codes = model.quantizer.nearest(frames.permute(0, 2, 3, 1).reshape(-1, d)).view(b, t.numel(), h, w)
    images = model.decode(codes.reshape(-1, h, w))
    return codes, images.reshape(b, t.numel(), *images.shape[1:])


def cell_changes(codes: torch.Tensor) -> dict[str, float]:
    """How code grids (B, T, h, w) change along paths: the mean number of cells that change from one frame to
    the next, the mean total number of such changes per path, and the fraction of cells whose code differs
    between the two ends."""
    steps = (codes[:, 1:] != codes[:, :-1]).flatten(2).sum(2).double()      # (B, T - 1)
    ends = (codes[:, 0] != codes[:, -1]).flatten(1).double().mean(1)
    return {"cells_changed_per_step": float(steps.mean()), "cell_changes_per_path": float(steps.sum(1).mean()),
            "cells_differing_at_ends": float(ends.mean())}
