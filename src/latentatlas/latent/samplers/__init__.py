"""Latent samplers: density models fitted on latent codes after training, then sampled.

``build_sampler("gmm:k=50,covariance=diag").fit(z).sample(n, generator=g)``; every sampler is in
``SAMPLERS`` (prior, gaussian, gmm, kde, path, simplex, the learned ddpm and two-stage, and empirical: the
training codes themselves, the floor; for the code grids of a VQ-VAE, categorical and pixelcnn) and
saves/loads its fitted state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler, NotFittedError
from latentatlas.latent.samplers import convex, ddpm, empirical, gmm, grid, kde, pixelcnn, prior, two_stage  # noqa
from latentatlas.latent.samplers.learned import LearnedSampler
from latentatlas.latent.samplers.gmm import GMM, Gaussian
from latentatlas.latent.samplers.gmm_select import hierarchical, select_k
from latentatlas.registry import parse_spec

__all__ = ["SAMPLERS", "LatentSampler", "LearnedSampler", "NotFittedError", "GMM", "Gaussian", "build_sampler",
           "load_sampler", "select_k", "hierarchical"]


def build_sampler(spec: str | dict[str, Any]) -> LatentSampler:
    """A sampler from ``"name:key=value,..."`` or ``{"name": ..., key: value}`` (unfitted)."""
    if isinstance(spec, str):
        name, params = parse_spec(spec)
    elif isinstance(spec, dict):
        params = dict(spec)
        if "name" not in params:
            raise ValueError(f"spec: a dict spec needs a 'name' key (one of {', '.join(SAMPLERS.names())}), "
                             f"got keys {sorted(params)}")
        name = params.pop("name")
    else:
        raise ValueError(f"spec: expected a string like 'gmm:k=50' or a mapping, got {type(spec).__name__} {spec!r}")
    if name not in SAMPLERS:
        raise ValueError(f"spec: unknown sampler {name!r}; expected one of: {', '.join(SAMPLERS.names())}")
    try:
        return SAMPLERS.get(name)(**params)
    except ValueError as err:    # a setting out of range: say which spec it came from
        raise ValueError(f"sampler {spec if isinstance(spec, str) else name!r}: {err}") from None


def load_sampler(path: str | Path, *, map_location: torch.device | str = "cpu") -> LatentSampler:
    """A fitted sampler saved with ``sampler.save(path)``."""
    return LatentSampler.load(path, map_location=map_location)
