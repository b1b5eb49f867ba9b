"""Pure loss functions.  Reconstruction losses are summed over the pixels of each image, shape (B,).
Under mixed-precision training they are computed in float32: the reconstruction loss takes 16-bit logits
to float32 here, posteriors and discriminator scores arrive in float32 from the models.

Images x are (B, C, H, W) in [0, 1]; decoders output logits of the same shape.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from latentatlas.models.base import Posterior, full_precision

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
    logits = full_precision(logits)
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


# -- adversarial losses ------------------------------------------------------------------------------------
ADVERSARIAL = ("non-saturating", "hinge", "wasserstein")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Batch-mean discriminator loss from the scores (logits / critic values) of real (B,) and fake (B,).

    non-saturating (Goodfellow et al. 2014): softplus(-real) + softplus(fake), i.e. binary cross-entropy;
    hinge (Lim & Ye 2017): relu(1 - real) + relu(1 + fake); wasserstein (Arjovsky et al. 2017): fake - real."""
    if kind == "non-saturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    raise ValueError(f"model.loss: expected one of {ADVERSARIAL}, got {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Batch-mean generator loss from the scores of fake samples (B,): softplus(-fake) for the
    non-saturating loss, -fake for hinge and wasserstein."""
    if kind == "non-saturating":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    raise ValueError(f"model.loss: expected one of {ADVERSARIAL}, got {kind!r}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): mean over the batch of (|grad_x critic(x_hat)|_2 - 1)^2 at
    x_hat = eps real + (1 - eps) fake, with eps (B,) in [0, 1] drawn by the caller.  Differentiable (the
    gradient is taken with create_graph), so it trains the critic."""
    eps = eps.view(-1, *([1] * (real.ndim - 1))).to(real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(real_scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): mean over the batch of |grad_x critic(x)|^2 at the real images
    ``real`` (B, ...), which must require grad, given their scores (B,) (the forward pass the adversarial
    loss uses); multiply by gamma / 2 for the usual weighting.  Differentiable (create_graph)."""
    (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
