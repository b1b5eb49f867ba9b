"""The GAN family: one model class, with variants as config defaults.

``gan`` (MLP nets, non-saturating loss, Goodfellow et al. 2014), ``dcgan`` (conv nets, Radford et al. 2016),
``wgan-gp`` (Wasserstein loss with gradient penalty and 5 critic steps per generator step, Gulrajani et al.
2017) and ``cgan`` (class-conditional: label planes into the discriminator, the one-hot label beside z
into the generator, Mirza & Osindero 2014).  Options every variant takes: hinge loss, spectral norm in the
discriminator, R1 penalty, an EMA copy of the generator that ``decode`` samples with, separate learning
rates for the two players (TTUR, Heusel et al. 2017) and DiffAugment.

Training is two phases per round: the discriminator (``n_critic`` times, each on a fresh batch), then the
generator.  A GAN has no encoder (codes come from inversion) and no validation loss: ``best.pt`` and early
stopping follow the sample-quality monitor's Fréchet distance (``monitor_frechet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from latentatlas.config import ModelConfig
from latentatlas.models.augment import diff_augment, parse_policy
from latentatlas.models.base import Batch, GenerativeModel, Optim, Phase, batch_rand, full_precision
from latentatlas.models.ema import ema_decay_at, ema_update, make_ema
from latentatlas.models.losses import (ADVERSARIAL, discriminator_loss, generator_loss, gradient_penalty,
                                       r1_penalty)
from latentatlas.models.nets import (NORMS, apply_spectral_norm, build_decoder, build_encoder, conditioned_shape,
                                     with_label_code, with_label_planes)
from latentatlas.models.registry import register_family
from latentatlas.validate import check_number, rule

PENALTIES = ("none", "gp", "r1")
EXPLODED = 1e5   # a mean discriminator score beyond this magnitude is a divergence


@dataclass(frozen=True)
class GANConfig(ModelConfig):
    family: str = "gan"
    latent_dim: int = field(default=64, metadata=rule(low=1))
    architecture: str = field(default="mlp", metadata=rule(choices=("conv", "mlp")))
    width: int = field(default=256, metadata=rule(low=1))
    conditional: bool = False
    loss: str = field(default="non-saturating", metadata=rule(choices=ADVERSARIAL))
    penalty: str = field(default="none", metadata=rule(choices=PENALTIES))  # gp (WGAN-GP) | r1 (on real images)
    penalty_weight: float = field(default=10.0, metadata=rule(low=0))       # lambda of gp; gamma of r1
    n_critic: int = field(default=1, metadata=rule(low=1))                  # discriminator steps per generator step
    spectral_norm: bool = False                                             # in the discriminator
    ema_decay: float = field(default=0.0, metadata=rule(low=0, high=0.99999))  # 0: off; e.g. 0.999
    lr_generator: float | None = field(default=None, metadata=rule(low=0, strict=True))  # None: train.lr
    lr_discriminator: float | None = field(default=None, metadata=rule(low=0, strict=True))  # None: train.lr
    betas: tuple = (0.5, 0.999)                                             # Adam betas of both players
    generator_norm: str = field(default="group", metadata=rule(choices=NORMS))  # conv generator's normalisation;
    #                                   'batch' trains faster on MNIST but its statistics are per rank under torchrun
    diff_augment: str = ""                                                  # e.g. "translation,cutout"


@dataclass(frozen=True)
class DCGANConfig(GANConfig):
    family: str = "dcgan"
    architecture: str = field(default="conv", metadata=rule(choices=("conv", "mlp")))
    width: int = field(default=64, metadata=rule(low=1))


@dataclass(frozen=True)
class WGANGPConfig(DCGANConfig):
    family: str = "wgan-gp"
    loss: str = field(default="wasserstein", metadata=rule(choices=ADVERSARIAL))
    penalty: str = field(default="gp", metadata=rule(choices=PENALTIES))
    n_critic: int = field(default=5, metadata=rule(low=1))
    betas: tuple = (0.0, 0.9)


@dataclass(frozen=True)
class CGANConfig(DCGANConfig):
    family: str = "cgan"
    conditional: bool = True


def check_betas(betas: object) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"model.betas: expected two numbers in [0, 1), got {betas!r}")
    for b in betas:
        check_number("model.betas", b, low=0, high=0.9999)
    return float(betas[0]), float(betas[1])


class Discriminator(nn.Module):
    """x (B, C, H, W) centred in [-1, 1] [, y] -> (score (B,), features (B, F)): the encoder body with
    LeakyReLU and no normalisation, optionally spectrally normalised; labels enter as one-hot planes."""

    def __init__(self, config: GANConfig, image_shape: tuple[int, int, int], n_classes: int | None) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.body = build_encoder(config.architecture, conditioned_shape(image_shape, n_classes), 1, config.width,
                                  config.hidden_layers, norm="none", act="leaky_relu")
        if config.spectral_norm:
            apply_spectral_norm(self.body)

    @property
    def feature_dim(self) -> int:
        return self.body.feature_dim

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body.forward_features(with_label_planes(x, y, self.n_classes))
        return full_precision(self.body.head(h).squeeze(1)), h   # scores in float32 under autocast


class GAN(GenerativeModel):
    """Generator G: z (B, latent_dim) [, y] -> images in [0, 1] (sigmoid of logits); discriminator D on
    images centred to [-1, 1] after DiffAugment.  ``decode`` uses the EMA generator when ``ema_decay`` > 0."""

    selection_metric = "monitor_frechet"

    def __init__(self, config: GANConfig, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        super().__init__(config, image_shape, n_classes)
        self.betas = check_betas(config.betas)
        self.policy = parse_policy(config.diff_augment)
        self.label_classes = self.n_classes if self.conditional else None
        self.generator = build_decoder(config.architecture, self.image_shape, self.generator_input_dim(),
                                       config.width, config.hidden_layers, norm=config.generator_norm,
                                       direct_output=True)
        self.discriminator = Discriminator(config, self.image_shape, self.label_classes)
        self.generator_ema = make_ema(self.generator) if config.ema_decay > 0 else None
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.ema_count: int | None = None   # ema_updates on the host (None: read it at the next update)

    def generator_input_dim(self) -> int:
        return self.latent_dim + (self.label_classes or 0)

    # -- sampling ---------------------------------------------------------------------------------------
    def generate_raw(self, z: torch.Tensor, y: torch.Tensor | None = None, *, average: bool = False) -> torch.Tensor:
        """G(z[, y]) in [0, 1] with the trained generator, or its EMA copy when ``average``."""
        self.check_latents(z)
        y = self.check_labels(y, z.shape[0])
        net = self.generator_ema if average and self.generator_ema is not None else self.generator
        return torch.sigmoid(net(with_label_code(z, y, self.label_classes)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, latent_dim) [, labels (B,)] -> images (B, C, H, W) in [0, 1] (EMA generator if kept)."""
        return self.generate_raw(z, y, average=True)

    def critic_input(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """What the discriminator sees of images in [0, 1]: DiffAugment(2x - 1)."""
        return diff_augment(x * 2 - 1, self.policy, generator)

    # -- training ---------------------------------------------------------------------------------------
    def fake_batch(self, batch: Batch, generator: torch.Generator | None):
        """Codes (B, latent_dim) from the prior and the labels to generate with (the real batch's)."""
        y = batch.y if self.conditional else None
        return self.prior_sample(len(batch), generator=generator), y

    def discriminator_loss(self, batch: Batch, *, generator: torch.Generator | None = None, progress: float = 0.0):
        """The discriminator's loss on a real batch and as many generated images, plus its penalty: gp at
        interpolates of the two (weight lambda), or R1 at the real images (gamma / 2 |grad|^2, from the same
        forward pass as the loss)."""
        z, y = self.fake_batch(batch, generator)
        with torch.no_grad():
            fake_in = self.critic_input(self.generate_raw(z, y), generator)
        real_in = self.critic_input(batch.x, generator).requires_grad_(self.config.penalty == "r1")
        real_score, _ = self.discriminator(real_in, y)
        fake_score, fake_h = self.discriminator(fake_in, y)
        loss = discriminator_loss(self.config.loss, real_score, fake_score)
        terms = {"adversarial": loss.detach(), "real_score": real_score.mean().detach(),
                 "fake_score": fake_score.mean().detach()}
        if self.config.penalty == "r1":
            penalty = 0.5 * self.config.penalty_weight * r1_penalty(real_score, real_in)
        elif self.config.penalty == "gp":
            eps = batch_rand((len(batch),), generator=generator, device=real_in.device)
            critic = lambda x: self.discriminator(x, y)[0]  # noqa: E731
            penalty = self.config.penalty_weight * gradient_penalty(critic, real_in, fake_in, eps)
        if self.config.penalty != "none":
            loss = loss + penalty
            terms["penalty"] = penalty.detach()
        loss, more = self.discriminator_extra(loss, z, fake_h)
        return loss, {**terms, **more}

    def generator_loss(self, batch: Batch, *, generator: torch.Generator | None = None, progress: float = 0.0):
        z, y = self.fake_batch(batch, generator)
        fake_score, fake_h = self.discriminator(self.critic_input(self.generate_raw(z, y), generator), y)
        loss = generator_loss(self.config.loss, fake_score)
        terms = {"fake_score": fake_score.mean().detach(), "adversarial": loss.detach()}
        loss, more = self.generator_extra(loss, z, fake_h)
        return loss, {**terms, **more}

    def discriminator_extra(self, loss: torch.Tensor, z: torch.Tensor, fake_h: torch.Tensor):
        """Hook for families that add terms to the discriminator phase (InfoGAN's mutual information)."""
        return loss, {}

    def generator_extra(self, loss: torch.Tensor, z: torch.Tensor, fake_h: torch.Tensor):
        """Hook for families that add terms to the generator phase."""
        return loss, {}

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def update_ema(self) -> None:
        if self.generator_ema is None:
            return
        if self.ema_count is None:   # after a build or a load: one read (a wait on a GPU), not one a step
            self.ema_count = int(self.ema_updates)
        self.ema_count += 1
        self.ema_updates.fill_(self.ema_count)
        ema_update(self.generator_ema, self.generator, ema_decay_at(self.ema_count, self.config.ema_decay))

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.ema_count = None

    def phases(self) -> list[Phase]:
        cfg = self.config
        return [Phase("discriminator", self.discriminator_parameters, self.discriminator_loss,
                      Optim(lr=cfg.lr_discriminator, betas=self.betas), repeat=cfg.n_critic),
                Phase("generator", lambda: list(self.generator.parameters()), self.generator_loss,
                      Optim(lr=cfg.lr_generator, betas=self.betas), after_step=self.update_ema)]

    def divergence(self, terms: dict[str, float]) -> str | None:
        for key in ("real_score", "fake_score"):
            if key in terms and abs(terms[key]) > EXPLODED:
                return (f"the discriminator exploded (mean {key.replace('_', ' ')} {terms[key]:.3g}, "
                        f"beyond {EXPLODED:g})")
        return None


register_family("gan", GAN, GANConfig, "GAN with MLP networks and the non-saturating loss")
register_family("dcgan", GAN, DCGANConfig, "deep convolutional GAN")
register_family("wgan-gp", GAN, WGANGPConfig, "Wasserstein GAN with gradient penalty, 5 critic steps")
register_family("cgan", GAN, CGANConfig, "class-conditional DCGAN (labels into both players)")
