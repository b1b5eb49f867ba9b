"""Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose aggregate posterior is matched to
a prior by a discriminator on codes, instead of a KL term per code.

Three phases per batch: ``reconstruction`` (encoder and decoder, the AE's reconstruction loss),
``discriminator`` (an MLP on codes tells prior draws from encoded images, non-saturating loss) and
``regularization`` (the encoder fools it).  The prior is a choice (``prior``):

- ``normal``: N(0, I);
- ``mixture``: an equal mixture of ``prior_modes`` Gaussians with standard deviation ``prior_std`` whose
  means lie at distance ``prior_radius`` from the origin along the coordinate axes (a regular polygon in
  the first two dimensions when there are more than twice as many modes as dimensions);
- ``labels``: the same mixture with one mode per class, the label telling the discriminator which mode a
  code must come from (the paper's label-conditioned layout); unlabelled use samples a mode at random.

Codes are continuous (B, latent_dim), so every latent tool applies unchanged; ``prior_sample`` draws from
the chosen prior, so decoded prior draws are the AAE's own samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.models.ae import AE, AEConfig
from latentatlas.models.base import Batch, Optim, Phase, batch_rand, batch_randn, full_precision
from latentatlas.models.losses import discriminator_loss, generator_loss
from latentatlas.models.registry import register_family
from latentatlas.rng import to_device
from latentatlas.validate import rule

PRIORS = ("normal", "mixture", "labels")
ADVERSARIAL_BETAS = (0.5, 0.9)       # the GAN practice (Radford et al. 2016) for the two adversarial phases
ADVERSARIAL_LR = 2e-4                 # (idem)


@dataclass(frozen=True)
class AAEConfig(AEConfig):
    family: str = "aae"
    prior: str = field(default="normal", metadata=rule(choices=PRIORS))
    prior_modes: int = field(default=10, metadata=rule(low=1))          # mixture: number of modes
    prior_radius: float = field(default=4.0, metadata=rule(low=0))      # mixture: distance of the means
    prior_std: float = field(default=1.0, metadata=rule(low=0, strict=True))
    adversarial_weight: float = field(default=1.0, metadata=rule(low=0))
    discriminator_width: int = field(default=256, metadata=rule(low=1))
    # the adversarial phases' step sizes (None: train.lr).  Adam's steps do not scale with the loss, so the
    # regularization phase moves the encoder as far per step as the reconstruction phase whatever
    # adversarial_weight is; at train.lr (1e-3) the two fight and reconstruction degrades epoch after epoch
    lr_discriminator: float | None = field(default=ADVERSARIAL_LR, metadata=rule(low=0, strict=True))
    lr_regularization: float | None = field(default=ADVERSARIAL_LR, metadata=rule(low=0, strict=True))


def mixture_means(modes: int, dim: int, radius: float) -> torch.Tensor:
    """Means (modes, dim) at distance ``radius`` from the origin: radius * e_1 .. e_dim, then -e_1 .., while
    there are at most 2 * dim modes; else a regular polygon in the first two dimensions."""
    means = torch.zeros(modes, dim)
    if modes <= 2 * dim:
        for k in range(modes):
            means[k, k % dim] = radius if k < dim else -radius
    else:
        angle = torch.arange(modes) * (2 * math.pi / modes)
        means[:, 0], means[:, min(1, dim - 1)] = radius * angle.cos(), radius * angle.sin()
    return means


class AAE(AE):
    """Deterministic encoder and decoder (as :class:`~latentatlas.models.ae.AE`) plus a code discriminator."""

    def __init__(self, config: AAEConfig, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        if config.prior == "labels" and not n_classes:
            raise ValueError("model.prior: 'labels' needs a dataset with class labels, but it has none")
        super().__init__(config, image_shape, n_classes)
        self.modes = n_classes if config.prior == "labels" else config.prior_modes
        self.register_buffer("prior_means", mixture_means(self.modes, self.latent_dim, config.prior_radius))
        extra = self.modes if config.prior == "labels" else 0
        width = config.discriminator_width
        self.code_discriminator = nn.Sequential(
            nn.Linear(self.latent_dim + extra, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2),
            nn.Linear(width, 1))

    # -- the prior ------------------------------------------------------------------------------------
    def prior_sample(self, n: int, *, generator: torch.Generator | None, modes: torch.Tensor | None = None) \
            -> torch.Tensor:
        """Codes (n, latent_dim) from the prior; ``modes`` (n,) picks the mixture component of each row."""
        eps = batch_randn((n, self.latent_dim), generator=generator, device=self.device)
        if self.config.prior == "normal":
            return eps
        if modes is None:
            modes = (batch_rand((n,), generator=generator) * self.modes).floor().long().clamp_(max=self.modes - 1)
        return self.prior_means[to_device(modes, self.device)] + self.config.prior_std * eps

    @property
    def normal_prior(self) -> bool:
        return self.config.prior == "normal"

    @property
    def uses_labels(self) -> bool:
        return self.conditional or self.config.prior == "labels"

    def _code_scores(self, z: torch.Tensor, modes: torch.Tensor | None) -> torch.Tensor:
        if self.config.prior == "labels":
            z = torch.cat([z, F.one_hot(modes, self.modes).to(z.dtype)], dim=1)
        return full_precision(self.code_discriminator(z).squeeze(1))   # float32 under autocast

    def _modes_of(self, batch: Batch) -> torch.Tensor | None:
        """The mixture component each row's code must match: its label for the 'labels' prior."""
        if self.config.prior != "labels":
            return None
        if batch.y is None:
            raise ValueError("y: the AAE with prior 'labels' needs the batch's class labels")
        return batch.y.long()

    # -- phases ---------------------------------------------------------------------------------------
    def discriminator_loss(self, batch: Batch, *, generator: torch.Generator | None = None, progress: float = 0.0):
        modes = self._modes_of(batch)
        with torch.no_grad():
            fake = self.encode(batch.x, batch.y if self.conditional else None).mean
        real = self.prior_sample(len(batch), generator=generator, modes=modes)
        real_score, fake_score = self._code_scores(real, modes), self._code_scores(fake, modes)
        loss = discriminator_loss("non-saturating", real_score, fake_score)
        return loss, {"prior_score": real_score.mean().detach(), "code_score": fake_score.mean().detach()}

    def regularization_loss(self, batch: Batch, *, generator: torch.Generator | None = None, progress: float = 0.0):
        modes = self._modes_of(batch)
        z = self.encode(batch.x, batch.y if self.conditional else None).mean
        loss = self.config.adversarial_weight * generator_loss("non-saturating", self._code_scores(z, modes))
        return loss, {"fooling": loss.detach()}

    def phases(self) -> list[Phase]:
        encoder = lambda: list(self.encoder.parameters())  # noqa: E731
        return [Phase("reconstruction", lambda: encoder() + list(self.decoder.parameters()), self.loss),
                Phase("discriminator", lambda: list(self.code_discriminator.parameters()), self.discriminator_loss,
                      Optim(lr=self.config.lr_discriminator, betas=ADVERSARIAL_BETAS)),
                Phase("regularization", encoder, self.regularization_loss,
                      Optim(lr=self.config.lr_regularization, betas=ADVERSARIAL_BETAS))]


register_family("aae", AAE, AAEConfig, "adversarial autoencoder: the code distribution is matched to a prior "
                "(normal, mixture, or label-conditioned mixture) by a discriminator")
