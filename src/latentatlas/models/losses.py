"""Pure loss functions.  Reconstruction losses are summed over the pixels of each image, shape (B,).

Images x are (B, C, H, W) in [0, 1]; decoders output logits of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from latentatlas.models.base import Posterior

LIKELIHOODS = ("bernoulli", "gaussian")


def bce_recon(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood -log p(x|z), summed per image: (B,).  Stable form on logits."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)


def mse_recon(mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed per image: (B,).  Equals the Gaussian NLL with variance 1/2, up to a constant."""
    return (mean - x).pow(2).flatten(1).sum(dim=1)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Per-image reconstruction loss (B,) for ``likelihood``.

    'bernoulli': BCE on the logits.  'gaussian': squared error of the mean ``sigmoid(logits)`` (the decoder
    mean is squashed into [0, 1], the data range, like the Bernoulli probabilities).
    """
    if likelihood == "bernoulli":
        return bce_recon(logits, x)
    if likelihood == "gaussian":
        return mse_recon(torch.sigmoid(logits), x)
    raise ValueError(f"likelihood: expected one of {LIKELIHOODS}, got {likelihood!r}")


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per row, (B,).  Zero when ``logvar`` is None."""
    return Posterior(mean, logvar).kl()


def kl_warmup(progress: float, kl_weight: float, warmup_epochs: float) -> float:
    """Linear warm-up: ``kl_weight * min(1, progress / warmup_epochs)``; ``kl_weight`` when no warm-up.

    ``progress`` is the training position in epochs (may be ``inf``, meaning warm-up finished).
    """
    if warmup_epochs <= 0 or math.isinf(progress):
        return float(kl_weight)
    return float(kl_weight) * min(1.0, max(0.0, float(progress)) / float(warmup_epochs))
