"""Model interfaces shared by every family.

A model maps images x: float32 (B, C, H, W) in [0, 1] to latent codes z: (B, d) and back.
- ``encode(x) -> Posterior``; ``decode(z) -> x`` in [0, 1] (for Bernoulli likelihoods, the probabilities).
- ``loss(x, *, generator, progress) -> (total, terms)``: ``progress`` is the training position in epochs
  (float), used for warm-ups; ``terms`` maps names to detached scalar tensors for logging.
- ``phases() -> list[Phase]``: the optimizer groups the trainer steps in turn (one for AE/VAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

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
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype).to(self.mean.device)
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
