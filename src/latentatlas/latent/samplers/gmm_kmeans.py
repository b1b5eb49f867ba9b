"""k-means initialisation of the Gaussian mixtures: greedy k-means++ seeding and Lloyd iterations, in
float32 (they only choose where EM starts; EM itself runs in the mixture's dtype)."""

from __future__ import annotations

import math

import torch

from latentatlas.rng import to_device
from latentatlas.tensors import group_sums, sq_dists


def sqdist(x: torch.Tensor, c: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances (n, k) between rows of x (n, d) and c (k, d); ``x_sq`` (n,): x's squared
    row norms when the caller has them."""
    return sq_dists(x, (x * x).sum(1) if x_sq is None else x_sq, c, (c * c).sum(1))


def kmeans_plusplus(x: torch.Tensor, k: int, *, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy k-means++ seeding (2 + log k candidates per step, as scikit-learn): centers (k, d).  The chosen
    candidate stays on the device (indexing with a 0-d tensor or reading it would wait for a GPU each step)."""
    n, d = x.shape
    trials = 2 + int(math.log(k))
    centers = x.new_empty(k, d)
    first = int(torch.randint(n, (1,), generator=generator))
    centers[0] = x[first]
    x_sq = (x * x).sum(1)
    closest = sqdist(x, x[first:first + 1], x_sq)[:, 0]
    for c in range(1, k):
        cum = torch.cumsum(closest, 0)
        r = to_device(torch.rand(trials, generator=generator, dtype=torch.float64), x.device).to(x.dtype) * cum[-1]
        cand = torch.searchsorted(cum, r).clamp_(max=n - 1)
        dist = torch.minimum(closest[:, None], sqdist(x, x[cand], x_sq))
        best = dist.sum(0).argmin().view(1)
        closest = dist.index_select(1, best)[:, 0].contiguous()
        centers[c] = x.index_select(0, cand.index_select(0, best))[0]
    return centers


def nearest(x: torch.Tensor, centers: torch.Tensor, batch_size: int, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Index of the nearest center of each code (float32 distances): (n,) long; ``x_sq`` as in sqdist.
    ``min(1).indices`` is argmin (the first minimum on ties) at half argmin's time on CPU."""
    c, batches = centers.float(), x.split(batch_size)
    norms = x_sq.split(batch_size) if x_sq is not None else [None] * len(batches)
    return torch.cat([sqdist(b.float(), c, b_sq).min(1).indices for b, b_sq in zip(batches, norms)])


def lloyd(x: torch.Tensor, centers: torch.Tensor, max_iter: int, tol: float, batch_size: int) -> torch.Tensor:
    """Lloyd iterations from ``centers`` (k, d) until the summed squared shift of the centers is at most
    ``tol`` times the mean variance of x's columns (scikit-learn's test) or ``max_iter``; empty clusters keep
    their center.  Float32."""
    x, centers = x.float(), centers.float()
    k = centers.shape[0]
    column_var = ((x - x.mean(0)) ** 2).sum(0) / (x.shape[0] - 1)   # x.var(0), which takes 5x as long on CPU
    limit, x_sq = tol * float(column_var.mean()), (x * x).sum(1)
    for _ in range(max_iter):
        labels = nearest(x, centers, batch_size, x_sq)
        sums = group_sums(labels, x, k)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)[:, None]
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= limit:
            break
    return centers
