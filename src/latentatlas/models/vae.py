"""Variational autoencoder; a beta-VAE is ``kl_weight=beta``, with an optional linear KL warm-up."""

from __future__ import annotations

from latentatlas.models import MODELS
from latentatlas.models.ae import AE
from latentatlas.models.losses import kl_warmup


@MODELS.register("vae")
class VAE(AE):
    """Gaussian-posterior autoencoder trained on the (beta-weighted) negative ELBO.

    loss = mean over the batch of recon(x, decode(z)) + w(progress) * KL(q(z|x) || N(0, I)), with
    z = mean + std * eps drawn from the ``generator`` and w rising linearly from 0 to ``kl_weight`` over
    ``kl_warmup_epochs`` epochs.
    """

    variational = True

    def kl_weight_at(self, progress: float) -> float:
        return kl_warmup(progress, self.config.kl_weight, self.config.kl_warmup_epochs)
