"""``prior``: the standard normal prior N(0, T^2 I) of a VAE, with temperature T."""

from __future__ import annotations

import math
from typing import Any

import torch

from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler
from latentatlas.validate import check_number
from latentatlas.rng import randn


@SAMPLERS.register("prior")
class Prior(LatentSampler):
    """N(0, temperature^2 I); fitting only records the dimension, device and dtype of the codes."""

    name = "prior"
    defaults = dict(temperature=1.0)

    def _check_params(self) -> None:
        check_number("temperature", self.temperature, low=0, strict=True)

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        self.temperature_ = float(self.temperature)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.temperature_ * randn((n, self.n_features_in_), generator=generator, device=self.codes_device,
                                         dtype=torch.float64)

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, T^2 I): (n,) float64."""
        z = self._check_query(z, torch.float64)
        d, t = self.n_features_in_, self.temperature_
        return -0.5 * (z * z).sum(1) / t**2 - d * math.log(t) - 0.5 * d * math.log(2 * math.pi)

    def _describe(self) -> dict[str, Any]:
        return {"temperature": self.temperature_}
