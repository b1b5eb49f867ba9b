"""Interpolation quality, measured.

- midpoint Fréchet distance: decode the midpoints of random pairs of test codes and compare their
  features with real images' features (the 'Interp.' column of Ghosh et al. 2020);
- smoothness: spread (coefficient of variation) of the step sizes in output space along a path;
- cycle error: ||encode(decode(z)) - z|| at each position of the path;
- realism: fraction of frames inside the k-NN manifold of real features (Kynkäänniemi et al. 2019);
- endpoint gap: the path's decoded endpoints against the original images.

Features are whatever ``features`` callable is given (float images (n, C, H, W) in [0, 1] -> (n, f)),
e.g. a latentatlas.metrics extractor; :class:`PixelPCAFeatures` is a light stand-in for tests.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch

from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import frechet
from latentatlas.metrics.prdc import knn_radii

log = logging.getLogger(__name__)

Fn = Callable[[torch.Tensor], torch.Tensor]


class PixelPCAFeatures:
    """Features = the first ``k`` principal components of images pooled to at most 32x32 pixels,
    fitted on real images (n, C, H, W) in [0, 1].  A stand-in when no learned extractor is available."""

    def __init__(self, real: torch.Tensor, k: int = 32) -> None:
        flat = self._flat(real)
        self.mean = flat.mean(dim=0)
        _, _, vt = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.basis = vt[:k].T

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] > 32:
            x = torch.nn.functional.adaptive_avg_pool2d(x, 32)
        return x.reshape(x.shape[0], -1).double()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (self._flat(x) - self.mean) @ self.basis


def frechet_distance(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to real (n, f) and fake (m, f) features."""
    return float(frechet(features_to_stats(torch.as_tensor(real)), features_to_stats(torch.as_tensor(fake))))


def inside_manifold(real: torch.Tensor, radii: torch.Tensor, fake: torch.Tensor, *, chunk: int = 2048) -> torch.Tensor:
    """Whether each fake feature (m, f) lies in some ball B(real_i, radius_i). -> bool (m,)."""
    out = []
    for s in range(0, fake.shape[0], chunk):
        d = torch.cdist(fake[s:s + chunk].double(), real.double())
        out.append((d < radii[None, :]).any(dim=1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def step_sizes(frames: torch.Tensor) -> torch.Tensor:
    """Output-space distance between consecutive frames of paths (B, T, ...). -> (B, T-1)."""
    flat = frames.reshape(frames.shape[0], frames.shape[1], -1).double()
    return (flat[:, 1:] - flat[:, :-1]).norm(dim=2)


def smoothness(frames: torch.Tensor) -> dict[str, float]:
    """Spread of step sizes along decoded paths (B, T, ...): mean coefficient of variation (0 for a
    constant-speed path) and mean ratio of the largest step to the mean step (1 is best); plus the mean
    path length."""
    s = step_sizes(frames)
    mean = s.mean(dim=1).clamp_min(1e-12)
    return {"step_cv": float((s.std(dim=1, unbiased=False) / mean).mean()),
            "max_step_ratio": float((s.max(dim=1).values / mean).mean()),
            "path_length": float(s.sum(dim=1).mean())}


@torch.no_grad()
def cycle_error(encode: Fn, decode: Fn, path: torch.Tensor) -> np.ndarray:
    """Mean ||encode(decode(z)) - z|| at each position of the paths (B, T, d). -> (T,)."""
    b, t, d = path.shape
    z = path.reshape(b * t, d)
    return (encode(decode(z)) - z).double().norm(dim=1).reshape(b, t).mean(dim=0).cpu().numpy()


def endpoint_gap(frames: torch.Tensor, x0: torch.Tensor, x1: torch.Tensor) -> float:
    """Mean per-pixel squared error between the decoded endpoints (frames[:, 0], frames[:, -1]) and
    the original images x0, x1 (B, C, H, W)."""
    e0 = (frames[:, 0].double() - x0.double()).pow(2).mean()
    e1 = (frames[:, -1].double() - x1.double()).pow(2).mean()
    return float((e0 + e1) / 2)


@torch.no_grad()
def midpoint_frechet(decode: Fn, features: Fn, real_features: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor,
                     interpolator: Callable[..., torch.Tensor]) -> float:
    """Fréchet distance between the features of the decoded midpoints of pairs z0, z1 (B, d) and
    real_features (n, f)."""
    mid = interpolator(z0, z1, torch.tensor([0.5], dtype=z0.dtype, device=z0.device))[:, 0]
    return frechet_distance(real_features, features(decode(mid)))


@torch.no_grad()
def path_realism(features: Fn, real_features: torch.Tensor, frames: torch.Tensor, *, k: int = 3) -> np.ndarray:
    """Fraction of frames (B, T, C, H, W) inside the k-NN manifold of real_features, per position. -> (T,)."""
    b, t = frames.shape[:2]
    radii = knn_radii(real_features, k, dtype=torch.float64)
    inside = inside_manifold(real_features, radii, features(frames.reshape(b * t, *frames.shape[2:])))
    return inside.reshape(b, t).double().mean(dim=0).cpu().numpy()


@torch.no_grad()
def path_scores(decode: Fn, encode: Fn, features: Fn, real_features: torch.Tensor, path: torch.Tensor,
                x0: torch.Tensor, x1: torch.Tensor, *, chunk: int = 256,
                keep: int = 8) -> tuple[dict[str, np.ndarray | float], torch.Tensor]:
    """The scores of decoded paths (B, T, d) between images x0, x1 (B, C, H, W), ``chunk`` paths at a time
    (memory bounded whatever B): ``realism`` and ``cycle`` per position (T,), the :func:`smoothness` keys and
    ``endpoint_gap_mse``, each the mean over the paths that one call on all of them gives.
    -> (scores, the frames (min(keep, B), T, C, H, W) of the first paths, for figures)."""
    b, t = path.shape[:2]
    sums: dict[str, np.ndarray] = {}
    kept: list[torch.Tensor] = []
    for start in range(0, b, chunk):
        part = path[start:start + chunk]
        frames = decode(part.reshape(-1, part.shape[2])).reshape(len(part), t, *x0.shape[1:])
        if start < keep:
            kept.append(frames[:keep - start].clone())   # a copy: the chunk's frames are freed
        scores = {"realism": path_realism(features, real_features, frames),
                  "cycle": cycle_error(encode, decode, part), **smoothness(frames),
                  "endpoint_gap_mse": endpoint_gap(frames, x0[start:start + chunk], x1[start:start + chunk])}
        for key, value in scores.items():
            sums[key] = sums.get(key, 0.0) + len(part) * np.asarray(value, dtype=np.float64)
    means = {key: value / b if value.ndim else float(value / b) for key, value in sums.items()}
    return means, torch.cat(kept) if kept else path.new_zeros((0, t, *x0.shape[1:]))
