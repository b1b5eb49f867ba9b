"""Exponential moving average of a network's weights (the EMA generator a GAN samples with).

After update t (counted from 1) the average is  ema <- d_t ema + (1 - d_t) w  with
d_t = min(decay, (1 + t) / (10 + t)): the warm-up of TensorFlow's ExponentialMovingAverage, so early
averages are not dominated by the random initial weights.  Buffers (e.g. BatchNorm statistics) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(step: int, decay: float) -> float:
    """The decay used by update number ``step`` (1, 2, ...)."""
    return min(float(decay), (1.0 + step) / (10.0 + step))


def make_ema(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to hold the average."""
    return copy.deepcopy(module).requires_grad_(False).eval()


@torch.no_grad()
def ema_update(ema: nn.Module, module: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * module for every parameter; buffers copied.  Multi-tensor operations
    (as torch.optim.swa_utils' EMA): a few kernels on a GPU instead of one a tensor."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in module.parameters()], 1.0 - decay)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(module.buffers()))
