"""InfoGAN (Chen et al. 2016): a GAN whose code has interpretable parts, found by maximising the mutual
information between parts of the code and the generated image.

The code (B, latent_dim) is ``[noise, one-hot categorical codes..., continuous codes]``: noise N(0, I),
each categorical code uniform over its values, continuous codes U(-1, 1).  A head Q on the discriminator's
features predicts the categorical codes (cross-entropy) and the continuous ones (Gaussian likelihood with
unit variance, i.e. half the squared error); ``info_weight`` times that loss is added to both phases.  On
MNIST the 10-valued categorical code comes to match the digit class (about 5 % error in the paper);
:func:`categorical_agreement` measures it with the dataset classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.models.base import batch_rand, batch_randn, full_precision
from latentatlas.models.gan import GAN, DCGANConfig
from latentatlas.models.registry import register_family
from latentatlas.rng import to_device
from latentatlas.validate import check_number, rule


@dataclass(frozen=True)
class InfoGANConfig(DCGANConfig):
    family: str = "infogan"
    latent_dim: int = field(default=74, metadata=rule(low=1))   # noise + categorical one-hots + continuous
    categorical: tuple = (10,)                                  # number of values of each categorical code
    continuous: int = field(default=2, metadata=rule(low=0))    # number of continuous codes
    info_weight: float = field(default=1.0, metadata=rule(low=0))


class InfoGAN(GAN):
    """A GAN with structured codes and a mutual-information head ``q`` on the discriminator features."""

    normal_prior = False

    def __init__(self, config: InfoGANConfig, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        super().__init__(config, image_shape, n_classes)
        cats = tuple(config.categorical)
        for k in cats:
            check_number("model.categorical", k, low=2, integer=True)
        self.categorical, self.continuous = cats, int(config.continuous)
        self.noise_dim = self.latent_dim - sum(cats) - self.continuous
        if self.noise_dim < 1:
            raise ValueError(f"model.latent_dim: expected more than the {sum(cats) + self.continuous} structured "
                             f"code dimensions (categorical {list(cats)}, continuous {self.continuous}), "
                             f"got {self.latent_dim}")
        hidden = 128
        self.q_head = nn.Sequential(nn.Linear(self.discriminator.feature_dim, hidden), nn.LeakyReLU(0.2),
                                    nn.Linear(hidden, sum(cats) + self.continuous))

    def prior_sample(self, n: int, *, generator: torch.Generator | None, fixed: tuple[int, int] | None = None) \
            -> torch.Tensor:
        """Codes (n, latent_dim); ``fixed=(i, v)`` sets categorical code i to value v for every row."""
        noise = batch_randn((n, self.noise_dim), generator=generator)
        parts = [noise]
        if self.categorical:
            u = batch_rand((n, len(self.categorical)), generator=generator)
            for i, k in enumerate(self.categorical):
                value = (u[:, i] * k).floor().long().clamp_(max=k - 1)
                if fixed is not None and fixed[0] == i:
                    value = torch.full_like(value, fixed[1])
                parts.append(F.one_hot(value, k).float())
        if self.continuous:
            parts.append(batch_rand((n, self.continuous), generator=generator) * 2 - 1)
        return to_device(torch.cat(parts, dim=1), self.device)   # made on the CPU, copied without a wait

    def info_loss(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mutual-information loss of the codes z (B, latent_dim) given discriminator features h (B, F)."""
        q = full_precision(self.q_head(h))
        start, out, loss = self.noise_dim, 0, q.new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        for i, k in enumerate(self.categorical):
            target = z[:, start:start + k].argmax(1)
            ce = F.cross_entropy(q[:, out:out + k], target)
            loss = loss + ce
            terms[f"info_cat{i}"] = ce.detach()
            start, out = start + k, out + k
        if self.continuous:
            mse = 0.5 * (q[:, out:] - z[:, start:]).pow(2).sum(1).mean()
            loss = loss + mse
            terms["info_cont"] = mse.detach()
        return loss, terms

    def discriminator_extra(self, loss, z, fake_h):
        info, terms = self.info_loss(z, fake_h)
        return loss + self.config.info_weight * info, terms

    def generator_extra(self, loss, z, fake_h):
        info, terms = self.info_loss(z, fake_h)
        return loss + self.config.info_weight * info, terms

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters()) + list(self.q_head.parameters())


@torch.no_grad()
def categorical_agreement(model: InfoGAN, classify: Callable[[torch.Tensor], torch.Tensor], *, code: int = 0,
                          n_per_value: int = 200, generator: torch.Generator | None = None) -> dict:
    """How well categorical code ``code`` matches the classes of a classifier: ``n_per_value`` images per
    code value (other code parts random), classified by ``classify`` (images (n, C, H, W) in [0, 1] ->
    class indices (n,)), codes matched to classes one-to-one by the Hungarian method; returns the error
    rate, the matching and the confusion counts."""
    from latentatlas.metrics.modes import matched_error

    if not model.categorical:
        raise ValueError("model.categorical: this InfoGAN has no categorical code")
    k = model.categorical[code]
    values, classes = [], []
    model.eval()
    for v in range(k):
        z = model.prior_sample(n_per_value, generator=generator, fixed=(code, v))
        classes.append(classify(model.decode(z)).cpu())
        values.append(torch.full((n_per_value,), v))
    return matched_error(torch.cat(values), torch.cat(classes))


register_family("infogan", InfoGAN, InfoGANConfig, "InfoGAN: categorical and continuous codes with an "
                "information head")
