"""``two-stage``: a second VAE fitted on the codes (Dai & Wipf, "Diagnosing and enhancing VAE models",
ICLR 2019), the published ex-post sampler for (V)AE codes.

The second stage is an MLP VAE on the standardised codes u (n, d) with a latent space of the same size and
a Gaussian likelihood whose variance gamma is learned (a scalar, the key of the method: as gamma shrinks
the second VAE matches the distribution of the codes, which the first stage leaves far from N(0, I)):
loss = |u - u_hat|^2 / (2 gamma) + d/2 log(2 pi gamma) + KL(q(v|u) || N(0, I)).  Sampling decodes
v ~ N(0, I) to the decoder mean.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from latentatlas.latent.samplers.base import SAMPLERS
from latentatlas.validate import check_number
from latentatlas.latent.samplers.learned import LEARNED_DEFAULTS, LearnedSampler
from latentatlas.rng import randn


GAMMA_START = 0.1


class SecondStage(nn.Module):
    """Encoder u -> (mean, log-variance) of v and decoder v -> u_hat, MLPs of ``depth`` layers, plus log gamma."""

    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()

        def mlp(n_in: int, n_out: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for i in range(depth):
                layers += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.SiLU()]
            return nn.Sequential(*layers, nn.Linear(hidden, n_out))

        self.encoder, self.decoder = mlp(d, 2 * d), mlp(d, d)
        # gamma starts well below the codes' unit variance: from gamma = 1 the decoder that ignores v (the
        # collapsed second stage, loss d/2 log(2 pi e)) is a stationary point that Adam does not leave
        self.log_gamma = nn.Parameter(torch.full((), math.log(GAMMA_START)))

    def loss(self, u: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per code, averaged over the batch, with reparameterisation noise eps (B, d)."""
        mean, logvar = self.encoder(u).chunk(2, dim=1)
        v = mean + (0.5 * logvar).exp() * eps
        d = u.shape[1]
        recon = (u - self.decoder(v)).pow(2).sum(1) / (2 * self.log_gamma.exp()) \
            + 0.5 * d * (math.log(2 * math.pi) + self.log_gamma)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return (recon + kl).mean()


@SAMPLERS.register("two-stage")
class TwoStage(LearnedSampler):
    """A second VAE on the codes: ``hidden`` units, ``depth`` hidden layers per network; learned-sampler
    settings (iters, batch_size, lr)."""

    name = "two-stage"
    defaults = dict(hidden=512, depth=3, **{**LEARNED_DEFAULTS, "iters": 5000})
    min_codes = 2

    def _check_params(self) -> None:
        self._check_learned_params()
        check_number("hidden", self.hidden, low=1, integer=True)
        check_number("depth", self.depth, low=1, integer=True)

    def build_network(self, d: int) -> nn.Module:
        return SecondStage(d, self.hidden, self.depth)

    def training_loss(self, net: nn.Module, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        return net.loss(x, randn(tuple(x.shape), generator=generator, device=x.device))

    def draw(self, net: nn.Module, n: int, generator: torch.Generator | None) -> torch.Tensor:
        v = randn((n, self.n_features_in_), generator=generator, device=self.codes_device)
        return net.decoder(v)

    def _describe(self) -> dict[str, Any]:
        gamma = float(self.weights_["log_gamma"].exp())
        return {**super()._describe(), "gamma": gamma}
