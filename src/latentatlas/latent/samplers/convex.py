"""``path`` and ``simplex``: new codes as convex combinations of fitted codes.

- ``path``: a point on the segment between two codes, ``(1 - t) z_i + t z_j`` with t uniform or
  Beta(a, b); pairs at random or among the k nearest neighbours, or pairs given by the caller with
  weights (e.g. a realism score of their decoded midpoints), so well-decoding paths are drawn more.
- ``simplex``: ``sum_j w_j z_j`` over m codes with Dirichlet(alpha) weights, the codes an anchor and
  m - 1 of its nearest neighbours, or drawn at random.
In both, anchors are uniform or proportional to per-code ``weights`` passed to ``fit``.
"""

from __future__ import annotations

from typing import Any

import torch

from latentatlas.rng import beta, choice, dirichlet, to_device
from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler
from latentatlas.validate import check_choice, check_number
from latentatlas.latent.samplers.gmm_kmeans import sqdist

BLOCK_ENTRIES = 2**26   # the most anchor-to-code distances held at once by the nearest-neighbour lookup


def _check_weights(name: str, w: Any, size: int) -> torch.Tensor:
    if not isinstance(w, torch.Tensor) or w.shape != (size,):
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"{name}: expected a tensor of shape ({size},), got {got}")
    w = w.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"{name}: expected finite non-negative weights with a positive sum")
    return w / w.sum()


class _ConvexSampler(LatentSampler):
    """Shared parts: the stored codes, anchor weights and nearest-neighbour lookup."""

    def _check_common(self) -> None:
        check_choice("mode", self.mode, ("random", "knn"))
        check_number("neighbors", self.neighbors, low=1, integer=True)

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None, weights: torch.Tensor | None = None) -> None:
        n = z.shape[0]
        if self.mode == "knn" and self.neighbors > n - 1:
            raise ValueError(f"neighbors: expected at most n - 1 = {n - 1} (the other codes), got {self.neighbors}")
        self.codes_ = z.detach().clone()
        self.anchor_weights_ = None if weights is None else _check_weights("weights", weights, n)

    def _anchors(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return choice(self.anchor_weights_, self.codes_.shape[0], n, generator=generator)

    def _neighbours(self, anchors: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """``count`` distinct neighbours drawn among the ``neighbors`` nearest codes of each anchor (n,):
        (n, count) on the codes' device (looked up there, blocks of anchors bounding the distance matrix)."""
        z = self.codes_
        rows = max(1, BLOCK_ENTRIES // z.shape[0])
        near = []
        for a in to_device(anchors, z.device).split(rows):
            dist = sqdist(z[a], z).scatter_(1, a[:, None], float("inf"))   # not the anchor itself
            near.append(dist.topk(self.neighbors, dim=1, largest=False).indices)
        keys = torch.rand((len(anchors), self.neighbors), generator=generator)
        return torch.cat(near).gather(1, to_device(keys.argsort(1)[:, :count], z.device))


@SAMPLERS.register("path")
class Path(_ConvexSampler):
    """Points on segments between pairs of codes.  ``fit(z, pairs=(P, 2), pair_weights=(P,))`` samples the
    given pairs with probability proportional to the weights; ``draw_pairs`` gives candidate pairs."""

    name = "path"
    defaults = dict(mode="random", neighbors=10, position="uniform", beta_a=2.0, beta_b=2.0)
    min_codes = 2

    def _check_params(self) -> None:
        self._check_common()
        check_choice("position", self.position, ("uniform", "beta"))
        check_number("beta_a", self.beta_a, low=0, strict=True)
        check_number("beta_b", self.beta_b, low=0, strict=True)

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None, weights: torch.Tensor | None = None,
             pairs: torch.Tensor | None = None, pair_weights: torch.Tensor | None = None) -> None:
        super()._fit(z, generator, weights)
        self.pairs_, self.pair_weights_ = None, None
        if pairs is None:
            if pair_weights is not None:
                raise ValueError("pair_weights: given without pairs; pass pairs=(P, 2) code indices too")
            return
        n = z.shape[0]
        if not isinstance(pairs, torch.Tensor) or pairs.dim() != 2 or pairs.shape[1] != 2 or pairs.is_floating_point():
            raise ValueError(f"pairs: expected an integer tensor of shape (P, 2), got {pairs!r:.100}")
        if pairs.shape[0] == 0 or int(pairs.min()) < 0 or int(pairs.max()) >= n:
            raise ValueError(f"pairs: expected a non-empty set of indices in [0, {n}), got {pairs.shape[0]} pairs "
                             f"in [{int(pairs.min()) if pairs.numel() else '-'}, "
                             f"{int(pairs.max()) if pairs.numel() else '-'}]")
        self.pairs_ = pairs.detach().to("cpu", torch.long)
        if pair_weights is not None:
            self.pair_weights_ = _check_weights("pair_weights", pair_weights, pairs.shape[0])

    def draw_pairs(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` index pairs (n, 2) long on the codes' device, as the sampler draws them (given pairs, nearest
        neighbours or random)."""
        self._check_fitted()
        check_number("n", n, low=1, integer=True)
        device = self.codes_device
        if self.pairs_ is not None:
            return to_device(self.pairs_[choice(self.pair_weights_, self.pairs_.shape[0], n, generator=generator)],
                             device)
        first = self._anchors(n, generator)
        if self.mode == "knn":
            second = self._neighbours(first, 1, generator)[:, 0]
        else:  # a uniformly drawn other code
            m = self.codes_.shape[0]
            second = to_device((first + 1 + torch.randint(m - 1, (n,), generator=generator)) % m, device)
        return torch.stack([to_device(first, device), second], 1)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        pairs = self.draw_pairs(n, generator=generator)
        if self.position == "uniform":
            t = torch.rand(n, generator=generator, dtype=torch.float64)
        else:
            t = beta(self.beta_a, self.beta_b, n, generator=generator)
        t = to_device(t.to(self.codes_.dtype), self.codes_device)[:, None]
        return (1 - t) * self.codes_[pairs[:, 0]] + t * self.codes_[pairs[:, 1]]

    def _describe(self) -> dict[str, Any]:
        return {"mode": "pairs" if self.pairs_ is not None else self.mode, "position": self.position,
                "n_pairs": None if self.pairs_ is None else int(self.pairs_.shape[0])}


@SAMPLERS.register("simplex")
class Simplex(_ConvexSampler):
    """Dirichlet(alpha) convex combinations of m codes (an anchor and m - 1 neighbours, or random codes)."""

    name = "simplex"
    defaults = dict(m=3, alpha=1.0, mode="knn", neighbors=10)

    def _check_params(self) -> None:
        self._check_common()
        check_number("m", self.m, low=2, integer=True)
        check_number("alpha", self.alpha, low=0, strict=True)
        if self.mode == "knn" and self.neighbors < self.m - 1:
            raise ValueError(f"neighbors: expected at least m - 1 = {self.m - 1}, got {self.neighbors}")

    def _min_rows(self) -> int:
        return self.m if self.mode == "random" else self.neighbors + 1

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        anchors = self._anchors(n, generator)
        if self.mode == "knn":
            others = self._neighbours(anchors, self.m - 1, generator)
        else:
            others = choice(self.anchor_weights_, self.codes_.shape[0], n * (self.m - 1), generator=generator)
            others = to_device(others.view(n, self.m - 1), self.codes_device)
        idx = torch.cat([to_device(anchors[:, None], self.codes_device), others], 1)
        w = to_device(dirichlet(self.alpha, n, self.m, generator=generator).to(self.codes_.dtype), self.codes_device)
        return (w[:, :, None] * self.codes_[idx]).sum(1)

    def _describe(self) -> dict[str, Any]:
        return {"m": self.m, "alpha": self.alpha, "mode": self.mode}
