"""Deterministic autoencoder; also the shared body of :class:`~latentatlas.models.vae.VAE`.

``decode(z)`` returns images in [0, 1]: ``sigmoid(logits)``.  For the Bernoulli likelihood these are the
pixel probabilities; for the Gaussian likelihood the decoder mean is squashed with the same sigmoid so it
stays in the data range.
"""

from __future__ import annotations

import torch
from torch import nn

from latentatlas.config import ModelConfig
from latentatlas.models import MODELS
from latentatlas.models.base import Phase, Posterior
from latentatlas.models.losses import reconstruction_loss
from latentatlas.models.nets import build_decoder, build_encoder

OPTIONS = {"hidden_layers": "hidden layers of the MLP encoder/decoder (default 2)"}


def _hidden_layers(options: dict) -> int:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"model.options: unknown key(s) {unknown} for ae/vae; expected some of {sorted(OPTIONS)}")
    value = options.get("hidden_layers", 2)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.options.hidden_layers: expected a positive int, got {value!r}")
    return value


@MODELS.register("ae")
class AE(nn.Module):
    """Autoencoder x (B, C, H, W) in [0, 1] -> z (B, latent_dim) -> x.

    ``variational`` (a class attribute, True in the VAE) makes the encoder output mean and log-variance.
    The loss is the per-image reconstruction loss plus ``kl_weight_at(progress)`` times the KL term,
    averaged over the batch; for the AE the KL is zero.
    """

    variational = False

    def __init__(self, config: ModelConfig, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = config
        self.image_shape = tuple(int(v) for v in image_shape)
        self.latent_dim = int(config.latent_dim)
        hidden = _hidden_layers(config.options)
        out = self.latent_dim * (2 if self.variational else 1)
        self.encoder = build_encoder(config.architecture, self.image_shape, out, config.width, hidden)
        self.decoder = build_decoder(config.architecture, self.image_shape, self.latent_dim, config.width, hidden)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z|x) for x (B, C, H, W) in [0, 1]; deterministic (logvar None) for the AE."""
        self._check_input(x)
        h = self.encoder(x)
        if self.variational:
            mean, logvar = h.chunk(2, dim=1)
            return Posterior(mean, logvar)
        return Posterior(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> logits (B, C, H, W)."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> images (B, C, H, W) in [0, 1] (sigmoid of the logits)."""
        return torch.sigmoid(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(posterior mean): (B, C, H, W) in [0, 1]."""
        return self.decode(self.encode(x).mean)

    def kl_weight_at(self, progress: float) -> float:
        """Weight of the KL term at ``progress`` epochs (0 for the AE)."""
        return 0.0

    def loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
             progress: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Batch-mean of recon + weight * KL; ``terms`` holds detached per-image averages."""
        posterior = self.encode(x)
        z = posterior.sample(generator)
        recon = reconstruction_loss(self.decode_logits(z), x, self.config.likelihood)
        terms = {"recon": recon.mean().detach()}
        if not self.variational:
            return recon.mean(), terms
        kl = posterior.kl()
        weight = self.kl_weight_at(progress)
        terms["kl"] = kl.mean().detach()
        terms["kl_weight"] = torch.tensor(weight, device=x.device)
        return (recon + weight * kl).mean(), terms

    def phases(self) -> list[Phase]:
        """One optimizer group over all parameters."""
        return [Phase("main", lambda: list(self.parameters()), self.loss)]
