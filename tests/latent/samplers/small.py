"""The small, fast spec of every sampler for the contract and device tests (a name absent here is cheap
at its defaults)."""

from __future__ import annotations

from latentatlas.latent.samplers import LatentSampler, build_sampler

SMALL = {"gmm": "gmm:k=2", "ddpm": "ddpm:iters=60,steps=10,hidden=16,depth=1",
         "two-stage": "two-stage:iters=60,hidden=16,depth=1", "pixelcnn": "pixelcnn:iters=40,dim=8,layers=2"}


def small(name: str) -> LatentSampler:
    """An unfitted sampler ``name`` at its small spec."""
    return build_sampler(SMALL.get(name, name))
