"""Model interfaces shared by every family.

A model maps images x: float32 (B, C, H, W) in [0, 1] to latent codes z: (B, d) and back.
- ``encode(x) -> Posterior``; ``decode(z) -> x`` in [0, 1] (for Bernoulli likelihoods, the probabilities).
- ``loss(x, *, generator, progress) -> (total, terms)``: ``progress`` is the training position in epochs
  (float), used for warm-ups; ``terms`` maps names to detached scalar tensors for logging.
- ``phases() -> list[Phase]``: the optimizer groups the trainer steps in turn (one for AE/VAE).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn


class Posterior:
    """A diagonal Gaussian q(z|x) = N(mean, exp(logvar)); an AE's posterior has zero variance (logvar None)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None = None) -> None:
        self.mean = mean
        self.logvar = logvar

    @property
    def std(self) -> torch.Tensor:
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw (B, d); the mean itself when the variance is zero."""
        if self.logvar is None:
            return self.mean
        eps = batch_randn(tuple(self.mean.shape), generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per row, shape (B,); zero for a deterministic posterior."""
        if self.logvar is None:
            return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=self.mean.dtype)
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)

    def kl_per_dim(self) -> torch.Tensor:
        """KL per latent dimension, shape (B, d)."""
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) per row, shape (B,)."""
        if self.logvar is None:
            raise ValueError("log_prob: a deterministic posterior has no density")
        return -0.5 * (((z - self.mean) ** 2) / self.logvar.exp() + self.logvar + math.log(2 * math.pi)).sum(dim=1)


@dataclass
class Phase:
    """One optimizer group: ``name`` (e.g. 'main', 'discriminator'), its parameters, and the loss for it."""

    name: str
    parameters: Callable[[], list[nn.Parameter]]
    loss: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


# --- batch-sharded noise (data-parallel training) -----------------------------------------------------------

_SHARD: contextvars.ContextVar[tuple[int, int, int] | None] = contextvars.ContextVar("latentatlas_shard", default=None)


@contextlib.contextmanager
def batch_shard(start: int, stop: int, total: int) -> Iterator[None]:
    """Within this block, batch-shaped noise drawn by :func:`batch_randn` is rows ``[start:stop]`` of one
    draw for the whole global batch of ``total`` rows.

    The trainer enters it on each data-parallel rank (every rank holds the same generator state), so a
    VAE's reparameterisation noise on a rank equals the single-process noise for the same rows.
    """
    if not 0 <= start <= stop <= total:
        raise ValueError(f"batch_shard: expected 0 <= start <= stop <= total, got {start}, {stop}, {total}")
    token = _SHARD.set((start, stop, total))
    try:
        yield
    finally:
        _SHARD.reset(token)


def batch_randn(shape: tuple[int, ...], *, generator: torch.Generator | None, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal draws of ``shape`` (B, ...) made on the CPU generator and moved to ``device``.

    Inside :func:`batch_shard` a draw whose first dimension is the local batch (stop - start) is taken
    from a draw for the global batch; otherwise this is ``torch.randn(shape, generator=generator)``.
    Families that draw per-row noise in ``loss`` (reparameterisation, GAN latents) should use it.
    """
    shard = _SHARD.get()
    if shard is not None and len(shape) > 0 and shape[0] == shard[1] - shard[0]:
        start, stop, total = shard
        full = torch.randn((total, *shape[1:]), generator=generator, dtype=dtype)
        return full[start:stop].to(device)
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)
