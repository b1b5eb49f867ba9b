"""``empirical``: the training codes themselves, the floor a sampler of those codes is judged against.

A sample of n codes is n distinct training codes drawn at random (without replacement; past the number
of codes, every code once per round, then the rest at random).  Its scores are what a sampler that
reproduced the training codes exactly would get: with finitely many samples a Fréchet distance is biased
upward and varies from draw to draw, so the empirical sampler's score, not zero and not the decoded
evaluation codes' score (paired image for image with the reference), is the lowest a fitted sampler can
expect.  It copies the training set, so the memorisation metrics flag it by design; it has no density.
"""

from __future__ import annotations

from typing import Any

import torch

from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler


@SAMPLERS.register("empirical")
class Empirical(LatentSampler):
    """Draws of the fitted codes without replacement.  Fitted: ``codes_ (n, d)``."""

    name = "empirical"
    defaults: dict[str, Any] = {}

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        self.codes_ = z.detach().clone()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        size = self.codes_.shape[0]
        rounds = [torch.randperm(size, generator=generator) for _ in range(-(-n // size))]
        return self.codes_[torch.cat(rounds)[:n].to(self.codes_device)]
