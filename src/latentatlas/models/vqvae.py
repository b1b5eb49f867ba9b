"""VQ-VAE (van den Oord et al. 2017): a conv autoencoder whose codes are grids of codebook indices.

The encoder maps x (B, C, H, W) to ze (B, D, h, w) (the conv stages of the AE, then a 1x1 conv to D =
``latent_dim``), each vector is replaced by its nearest codebook entry (:mod:`latentatlas.models.quantize`),
and the decoder maps the grid back (1x1 conv, then the transposed-conv stages).  Loss: reconstruction +
``commitment`` |ze - sg(zq)|^2 (+ the codebook loss when ``codebook_update: loss``).  Codes are integer
grids (B, h, w) (``code_kind = 'discrete'``): ``encode`` returns them, ``decode`` takes them (or
pre-quantisation vectors (B, D, h, w), quantised first), and samples come from grid samplers
(``categorical``, ``pixelcnn``).  Codebook usage and perplexity are measured over each whole epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from latentatlas.config import ModelConfig
from latentatlas.models.base import Batch, GenerativeModel, Phase
from latentatlas.models.losses import LIKELIHOODS, reconstruction_loss
from latentatlas.models.nets import check_conv_shape, norm_layer, stage_channels
from latentatlas.models.quantize import UPDATES, VectorQuantizer
from latentatlas.models.registry import register_family
from latentatlas.rng import to_device
from latentatlas.validate import rule


@dataclass(frozen=True)
class VQVAEConfig(ModelConfig):
    family: str = "vqvae"
    latent_dim: int = field(default=16, metadata=rule(low=1))          # D, the size of a codebook vector
    architecture: str = field(default="conv", metadata=rule(choices=("conv",)))
    likelihood: str = field(default="bernoulli", metadata=rule(choices=LIKELIHOODS))
    codebook_size: int = field(default=512, metadata=rule(low=2))
    codebook_update: str = field(default="ema", metadata=rule(choices=UPDATES))
    codebook_decay: float = field(default=0.99, metadata=rule(low=0, high=0.9999))
    commitment: float = field(default=0.25, metadata=rule(low=0))
    dead_after: int = field(default=100, metadata=rule(low=0))          # steps unused before a reset; 0: never
    kmeans_init: bool = True


class VQVAE(GenerativeModel):
    has_encoder = True
    code_kind = "discrete"
    normal_prior = False
    default_samplers = ("categorical", "pixelcnn")

    def __init__(self, config: VQVAEConfig, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        super().__init__(config, image_shape, n_classes)
        stages = check_conv_shape(self.image_shape)
        channels, height, width = self.image_shape
        chans = stage_channels(config.width, stages)
        self.grid = (height >> stages, width >> stages)
        layers: list[nn.Module] = []
        c = channels
        for c_out in chans:
            layers += [nn.Conv2d(c, c_out, 4, stride=2, padding=1), norm_layer("group", c_out), nn.SiLU()]
            c = c_out
        self.encoder = nn.Sequential(*layers, nn.Conv2d(c, self.latent_dim, 1))
        layers = [nn.Conv2d(self.latent_dim, chans[-1], 1), norm_layer("group", chans[-1]), nn.SiLU()]
        for c_in, c_out in zip(chans[::-1], chans[::-1][1:] + [config.width]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), norm_layer("group", c_out), nn.SiLU()]
        self.decoder = nn.Sequential(*layers, nn.Conv2d(config.width, channels, 3, padding=1))
        self.quantizer = VectorQuantizer(config.codebook_size, self.latent_dim, update=config.codebook_update,
                                         decay=config.codebook_decay, dead_after=config.dead_after,
                                         kmeans_init=config.kmeans_init)

    @property
    def code_shape(self) -> tuple[int, ...]:
        """(h, w): one codebook index per cell."""
        return self.grid

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation encoder outputs ze (B, D, h, w) of images (B, C, H, W) in [0, 1]."""
        self.check_images(x)
        return self.encoder(x * 2 - 1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code grids (B, h, w) long: the nearest codebook entry of each encoder output."""
        ze = self.encode_continuous(x)
        b, d, h, w = ze.shape
        return self.quantizer.nearest(ze.permute(0, 2, 3, 1).reshape(-1, d)).view(b, h, w)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code grids (B, h, w) long, or encoder-space vectors (B, D, h, w) (quantised first) -> images in [0, 1]."""
        if z.dtype in (torch.long, torch.int32, torch.int16, torch.uint8):
            if z.ndim != 3 or tuple(z.shape[1:]) != self.grid:
                raise ValueError(f"z: expected code grids (B, {self.grid[0]}, {self.grid[1]}), got {tuple(z.shape)}")
            if z.numel() and (int(z.min()) < 0 or int(z.max()) >= self.quantizer.size):
                raise ValueError(f"z: codes must lie in [0, {self.quantizer.size}), "
                                 f"got [{int(z.min())}, {int(z.max())}]")
            zq = self.quantizer.lookup(z.long())
        else:
            b, d, h, w = z.shape
            zq = self.quantizer.lookup(self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d)).view(b, h, w))
        return torch.sigmoid(self.decoder(zq))

    def prior_sample(self, n: int, *, generator: torch.Generator | None) -> torch.Tensor:
        """Uniformly random code grids (n, h, w): a VQ-VAE's samples come from a fitted grid sampler."""
        return to_device(torch.randint(self.quantizer.size, (n, *self.grid), generator=generator), self.device)

    def loss(self, batch: Batch, *, generator: torch.Generator | None = None, progress: float = 0.0):
        zq, indices, vq = self.quantizer(self.encode_continuous(batch.x), generator)
        recon = reconstruction_loss(self.decoder(zq), batch.x, self.config.likelihood)
        total = recon.mean() + self.config.commitment * vq["commitment"] * math.prod(self.grid) * self.latent_dim
        terms = {"recon": recon.mean().detach(), "commitment": vq["commitment"].detach()}
        if "codebook" in vq:
            total = total + vq["codebook"] * math.prod(self.grid) * self.latent_dim
            terms["codebook"] = vq["codebook"].detach()
        return total, terms

    def validation_loss(self, batch: Batch, *, generator: torch.Generator | None):
        return self.loss(batch, generator=generator)

    def phases(self) -> list[Phase]:
        return [Phase("main", lambda: [p for p in self.parameters() if p.requires_grad], self.loss)]

    def epoch_summary(self) -> dict[str, float]:
        """Codebook usage and perplexity over the training batches of the epoch that just ended."""
        return self.quantizer.epoch_usage()


register_family("vqvae", VQVAE, VQVAEConfig, "VQ-VAE: codes are grids of codebook indices (EMA codebook, "
                "k-means initialisation, dead-code reset); sample with categorical or pixelcnn")
