"""Autoencoders: the deterministic AE, the (beta-)VAE, and their class-conditional variant (cvae).

``decode(z)`` returns images in [0, 1]: ``sigmoid(logits)``.  For the Bernoulli likelihood these are the
pixel probabilities; for the Gaussian likelihood the decoder mean is squashed with the same sigmoid so it
stays in the data range.  A beta-VAE is ``kl_weight=beta``; a conditional model (``conditional: true``)
sees one-hot label planes in the encoder and the one-hot label beside z in the decoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from latentatlas.config import ModelConfig
from latentatlas.models.base import Batch, GenerativeModel, Phase, Posterior
from latentatlas.models.losses import LIKELIHOODS, kl_warmup, reconstruction_loss
from latentatlas.models.nets import (DECODER_OUTPUTS, build_decoder, build_encoder, conditioned_shape, with_label_code,
                                     with_label_planes)
from latentatlas.models.registry import register_family
from latentatlas.validate import rule


@dataclass(frozen=True)
class AEConfig(ModelConfig):
    family: str = "ae"
    likelihood: str = field(default="bernoulli", metadata=rule(choices=LIKELIHOODS))  # bernoulli (BCE) | gaussian (MSE)
    conditional: bool = False           # class-conditional encoder and decoder (needs labels)
    decoder_output: str = field(default="transposed", metadata=rule(choices=DECODER_OUTPUTS))  # conv decoder's
    #                                   last layer: 'transposed' makes the image channels; 'conv3x3' adds a
    #                                   hidden full-resolution layer and a 3x3 conv (the default until 2026-12;
    #                                   checkpoints written before this field have it)


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    family: str = "vae"
    kl_weight: float = field(default=1.0, metadata=rule(low=0))          # beta of a beta-VAE
    kl_warmup_epochs: float = field(default=0.0, metadata=rule(low=0))   # linear KL warm-up from 0 to kl_weight


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    family: str = "cvae"
    conditional: bool = True


class AE(GenerativeModel):
    """Autoencoder x (B, C, H, W) in [0, 1] -> z (B, latent_dim) -> x.

    ``variational`` (True in the VAE) makes the encoder output mean and log-variance.  The loss is the
    per-image reconstruction loss plus ``kl_weight_at(progress)`` times the KL term, averaged over the
    batch; for the AE the KL is zero.
    """

    has_encoder = True
    variational = False

    def __init__(self, config: AEConfig, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        super().__init__(config, image_shape, n_classes)
        labels = self.n_classes if self.conditional else None
        self.label_classes = labels
        out = self.latent_dim * (2 if self.variational else 1)
        self.encoder = build_encoder(config.architecture, conditioned_shape(self.image_shape, labels), out,
                                     config.width, config.hidden_layers)
        self.decoder = build_decoder(config.architecture, self.image_shape, self.latent_dim + (labels or 0),
                                     config.width, config.hidden_layers,
                                     direct_output=config.decoder_output == "transposed")

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(z|x[, y]) for x (B, C, H, W) in [0, 1]; deterministic (logvar None) for the AE."""
        self.check_images(x)
        y = self.check_labels(y, x.shape[0])
        h = self.encoder(with_label_planes(x, y, self.label_classes))
        if self.variational:
            mean, logvar = h.chunk(2, dim=1)
            return Posterior(mean, logvar)
        return Posterior(h)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) [, y (B,)] -> logits (B, C, H, W)."""
        self.check_latents(z)
        y = self.check_labels(y, z.shape[0])
        return self.decoder(with_label_code(z, y, self.label_classes))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) [, y (B,)] -> images (B, C, H, W) in [0, 1] (sigmoid of the logits)."""
        return torch.sigmoid(self.decode_logits(z, y))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """decode(posterior mean): (B, C, H, W) in [0, 1]."""
        return self.decode(self.encode(x, y).mean, y)

    def kl_weight_at(self, progress: float) -> float:
        """Weight of the KL term at ``progress`` epochs (0 for the AE)."""
        return 0.0

    def loss(self, batch: Batch, *, generator: torch.Generator | None = None,
             progress: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Batch-mean of recon + weight * KL; ``terms`` holds detached per-image averages."""
        x, y = batch.x, batch.y
        posterior = self.encode(x, y)
        z = posterior.sample(generator)
        recon = reconstruction_loss(self.decode_logits(z, y), x, self.config.likelihood)
        terms = {"recon": recon.mean().detach()}
        if not self.variational:
            return recon.mean(), terms
        kl = posterior.kl()
        weight = self.kl_weight_at(progress)
        terms["kl"] = kl.mean().detach()
        terms["kl_weight"] = torch.full((), weight, device=x.device)   # torch.tensor(w, device) would wait
        return (recon + weight * kl).mean(), terms

    def validation_loss(self, batch: Batch, *, generator: torch.Generator | None):
        """The training loss with warm-ups finished."""
        return self.loss(batch, generator=generator, progress=math.inf)

    def phases(self) -> list[Phase]:
        """One optimizer over all parameters, with the run's lr and weight decay."""
        return [Phase("main", lambda: list(self.parameters()), self.loss)]


class VAE(AE):
    """Gaussian-posterior autoencoder trained on the (beta-weighted) negative ELBO.

    loss = mean over the batch of recon(x, decode(z)) + w(progress) * KL(q(z|x) || N(0, I)), with
    z = mean + std * eps drawn from the ``generator`` and w rising linearly from 0 to ``kl_weight`` over
    ``kl_warmup_epochs`` epochs.
    """

    variational = True

    def kl_weight_at(self, progress: float) -> float:
        return kl_warmup(progress, self.config.kl_weight, self.config.kl_warmup_epochs)


register_family("ae", AE, AEConfig, "deterministic autoencoder; samples come from samplers fitted on its codes")
register_family("vae", VAE, VAEConfig, "variational autoencoder; kl_weight is the beta of a beta-VAE")
register_family("cvae", VAE, CVAEConfig, "class-conditional VAE (encoder and decoder see the label)")
