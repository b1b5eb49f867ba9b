"""Samplers of discrete code grids (VQ-VAE codes): codes are long tensors (n, h, w) of values in [0, K).

``categorical`` is the baseline: every cell independent, with its own smoothed frequencies of the K
values; ``score_samples`` is the exact log-likelihood of a grid, sum over cells of log p_cell(code), in
nats.  :class:`GridSampler` holds what every grid sampler shares (validation, K, the grid shape).
"""

from __future__ import annotations

from typing import Any

import torch

from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler
from latentatlas.validate import check_number


def check_grids(z: Any, name: str = "z", *, grid: tuple[int, int] | None = None, min_rows: int = 1) -> torch.Tensor:
    """Validate code grids: an integer tensor (n, h, w) of non-negative values."""
    if not isinstance(z, torch.Tensor) or z.ndim != 3 or z.is_floating_point() or z.dtype == torch.bool:
        got = f"{z.dtype} {tuple(z.shape)}" if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{name}: expected integer code grids (n, h, w) (a VQ-VAE's codes), got {got}")
    if grid is not None and tuple(z.shape[1:]) != tuple(grid):
        raise ValueError(f"{name}: expected grids of shape {tuple(grid)} (as fitted), got {tuple(z.shape[1:])}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} grids, got {z.shape[0]}")
    if z.numel() and int(z.min()) < 0:
        raise ValueError(f"{name}: expected code values >= 0, got {int(z.min())}")
    return z


class GridSampler(LatentSampler):
    """Base of grid samplers: fitted ``grid_`` (h, w) and ``values_`` K (``values`` or the largest code + 1)."""

    code_kind = "discrete"

    def check_input(self, z: Any, *, dim: int | None = None, min_rows: int = 1) -> torch.Tensor:
        grid = getattr(self, "grid_", None) if dim is not None else None
        z = check_grids(z, "z", grid=grid, min_rows=min_rows)
        if dim is not None and z.numel() and int(z.max()) >= self.values_:
            raise ValueError(f"z: expected code values < {self.values_} (the fitted codebook size), got {int(z.max())}")
        return z

    def _set_shape(self, z: torch.Tensor) -> None:
        self.grid_ = [int(z.shape[1]), int(z.shape[2])]
        self.values_ = int(self.values) if self.values is not None else int(z.max()) + 1
        if self.values_ <= int(z.max()):
            raise ValueError(f"values: expected more than the largest code {int(z.max())}, got {self.values}")

    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Draw ``n`` grids: (n, h, w) long."""
        self._check_fitted()
        check_number("n", n, low=0, integer=True)
        if n == 0:
            return torch.empty(0, *self.grid_, dtype=torch.long, device=self.codes_device)
        return self._sample(int(n), generator, **options).to(device=self.codes_device, dtype=torch.long)


@SAMPLERS.register("categorical")
class Categorical(GridSampler):
    """Independent cells: p_cell(v) = (count + alpha) / (n + K alpha)."""

    name = "categorical"
    defaults = dict(alpha=0.5, values=None)

    def _check_params(self) -> None:
        check_number("alpha", self.alpha, low=0)
        check_number("values", self.values, low=1, integer=True, optional=True)

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        self._set_shape(z)
        flat = z.reshape(z.shape[0], -1).long()
        counts = torch.zeros(flat.shape[1], self.values_, dtype=torch.float64, device=z.device)
        counts.scatter_add_(1, flat.T.contiguous(), torch.ones_like(flat.T, dtype=torch.float64))
        self.log_probs_ = ((counts + self.alpha) / (flat.shape[0] + self.values_ * self.alpha)).log()

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        probs = self.log_probs_.exp().cpu()
        draws = torch.multinomial(probs, n, replacement=True, generator=generator)   # (cells, n)
        return draws.T.reshape(n, *self.grid_)

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood of each grid (n,) in nats."""
        z = self._check_query(z).reshape(z.shape[0], -1).long()
        return self.log_probs_.gather(1, z.T).sum(0)

    def _describe(self) -> dict[str, Any]:
        return {"grid": self.grid_, "values": self.values_, "entropy_per_cell_nats":
                float(-(self.log_probs_.exp() * self.log_probs_).sum(1).mean())}
