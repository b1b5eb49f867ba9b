"""``kde``: Gaussian kernel density on the codes, evaluated exactly (every code, no tree, no cut-off).

The bandwidth is a number (absolute, the same in every dimension) or a rule scaled by the spread of
the codes: ``scott`` n^(-1/(d+4)), ``silverman`` (n (d+2) / 4)^(-1/(d+4)), or ``heldout`` (the factor
maximising the log-likelihood of a validation split over a grid, then rescaled to n by Scott's rate).
The spread is the root mean variance (``scale=isotropic``) or each dimension's standard deviation
(``scale=diagonal``).  Densities are a batched log-sum-exp over squared distances from one GEMM
per block of queries, computed in float64 by default (exact to ~1e-13 nats).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from latentatlas.latent.samplers.base import SAMPLERS, LatentSampler, default_generator
from latentatlas.rng import choice, randn, to_device
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

RULES = ("scott", "silverman", "heldout")
HELDOUT_GRID = 2.0 ** torch.linspace(-4, 2, 25, dtype=torch.float64)  # multiples of Scott's factor


def rule_factor(rule: str, n: int, d: int) -> float:
    """Scott's or Silverman's bandwidth factor for n codes in d dimensions."""
    if rule == "silverman":
        return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    return n ** (-1.0 / (d + 4))


def _augment(x: torch.Tensor, query: bool) -> torch.Tensor:
    """Rows ``[x, 1, -|x|^2/2]`` (queries) or ``[x, -|x|^2/2, 1]`` (codes): their products are -|q - x|^2/2."""
    half = -0.5 * (x * x).sum(1, keepdim=True)
    one = torch.ones_like(half)
    return torch.cat([x, one, half] if query else [x, half, one], 1)


def _kernel_lse(u_query: torch.Tensor, u_data: torch.Tensor, rows: int, scales: list[float] | None = None
                ) -> torch.Tensor:
    """log sum_i exp(-a |q - x_i|^2 / 2) per query and scale a: (m, len(scales)); a = 1 by default.

    One GEMM per block of query rows into a reused buffer (fresh large allocations cost page faults),
    then in-place max-shift, exp and sum.  Shifted terms are floored at 0.9 log(smallest normal) (-78.6 in
    float32, -637 in float64): exp is several times slower where its result would be subnormal, and terms
    that small change the sum (>= 1, the top term) by less than 1e-25 even over 1e9 codes.
    """
    scales = scales or [1.0]
    floor = 0.9 * math.log(torch.finfo(u_query.dtype).tiny)
    q, codes_t = _augment(u_query, True), _augment(u_data, False).T.contiguous()
    rows = max(1, min(rows, q.shape[0]))
    buf = q.new_empty(rows, codes_t.shape[1])
    work = q.new_empty(rows, codes_t.shape[1]) if len(scales) > 1 else None
    out = q.new_empty(q.shape[0], len(scales))
    for start in range(0, q.shape[0], rows):
        block = q[start:start + rows]
        dist = torch.mm(block, codes_t, out=buf[:len(block)])  # -|q - x|^2 / 2
        for j, a in enumerate(scales):
            e = dist if work is None else torch.mul(dist, a, out=work[:len(block)])
            top = e.amax(1, keepdim=True)
            out[start:start + len(block), j] = top[:, 0] + e.sub_(top).clamp_min_(floor).exp_().sum(1).log_()
    return out


@SAMPLERS.register("kde")
class KDE(LatentSampler):
    """Gaussian KDE. Fitted: ``bandwidth_ (d,)``, codes in bandwidth units, ``heldout_curve_`` for heldout."""

    name = "kde"
    defaults = dict(bandwidth="scott", scale="isotropic", dtype="float64", val_fraction=0.2, max_val=2000,
                    max_memory_gib=1.0, seed=0)
    min_codes = 2

    def _check_params(self) -> None:
        if isinstance(self.bandwidth, str):
            check_choice("bandwidth", self.bandwidth, RULES)
        else:
            check_number("bandwidth", self.bandwidth, low=0, strict=True)
        check_choice("scale", self.scale, ("isotropic", "diagonal"))
        check_choice("dtype", self.dtype, ("float64", "float32"))
        check_number("val_fraction", self.val_fraction, low=0, strict=True)
        if self.val_fraction >= 1:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction!r}")
        check_number("max_val", self.max_val, low=1, integer=True)
        check_number("max_memory_gib", self.max_memory_gib, low=0, strict=True)
        check_number("seed", self.seed, integer=True)

    def _min_rows(self) -> int:
        return 4 if self.bandwidth == "heldout" else 2

    def _rows(self, n: int, item: int) -> int:
        """Query rows per batch so that the (rows, n) distance block stays within the memory budget."""
        return max(1, int(self.max_memory_gib * 2**30 / 2 / (n * item)))

    def _spread(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(0)
        if self.scale == "isotropic":
            spread = var.mean().sqrt().expand(x.shape[1]).clone()
        else:
            spread = var.sqrt()
            spread = spread.clamp_min(float(spread.max()) * 1e-6)
        if not bool((spread > 0).all()):
            raise ValueError("z: the codes have no spread (all rows equal), so a rule bandwidth is undefined; "
                             "pass a numeric bandwidth")
        return spread

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        x = z.to(getattr(torch, self.dtype))
        shift = x.mean(0)
        x = x - shift
        n, d = x.shape
        if not isinstance(self.bandwidth, str):
            bw = torch.full((d,), float(self.bandwidth), dtype=x.dtype, device=x.device)
        elif self.bandwidth == "heldout":
            bw = self._spread(x) * self._heldout_factor(x, default_generator(generator, self.seed))
        else:
            bw = self._spread(x) * rule_factor(self.bandwidth, n, d)
        self.bandwidth_, self.shift_ = bw, shift
        self.codes_ = x / bw
        self.log_norm_ = float(-torch.log(bw).sum() - 0.5 * d * math.log(2 * math.pi) - math.log(n))

    def _heldout_factor(self, x: torch.Tensor, g: torch.Generator) -> float:
        n, d = x.shape
        perm = to_device(torch.randperm(n, generator=g), x.device)
        n_val = max(1, min(int(round(self.val_fraction * n)), n - 2))
        train, val = x[perm[n_val:]], x[perm[:n_val][: self.max_val]]
        spread = self._spread(train)
        base = rule_factor("scott", train.shape[0], d)
        grid = (HELDOUT_GRID * base).tolist()
        rows = self._rows(train.shape[0], x.element_size()) // 2
        lse = _kernel_lse(val / spread, train / spread, rows, [1.0 / f**2 for f in grid])
        ll = lse.mean(0) - d * torch.log(torch.tensor(grid, dtype=lse.dtype, device=lse.device))
        ll = ll - torch.log(spread).sum() - 0.5 * d * math.log(2 * math.pi) - math.log(train.shape[0])
        best = int(ll.argmax())
        if best in (0, len(grid) - 1):
            log.warning("kde: the held-out bandwidth is at the edge of the search grid (factor %.3g)", grid[best])
        self.heldout_curve_ = [{"factor": f, "heldout_ll": float(v)} for f, v in zip(grid, ll)]
        return grid[best] * (n / train.shape[0]) ** (-1.0 / (d + 4))

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log density of each code: (n,) in the compute dtype (float64 by default)."""
        q = (self._check_query(z, self.codes_.dtype) - self.shift_) / self.bandwidth_
        rows = self._rows(self.codes_.shape[0], self.codes_.element_size())
        return _kernel_lse(q, self.codes_, rows)[:, 0] + self.log_norm_

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        idx = to_device(choice(None, self.codes_.shape[0], n, generator=generator), self.codes_device)
        eps = randn((n, self.n_features_in_), generator=generator, device=self.codes_device, dtype=self.codes_.dtype)
        return (self.codes_[idx] + eps) * self.bandwidth_ + self.shift_

    def _describe(self) -> dict[str, Any]:
        info = {"bandwidth": self.bandwidth, "scale": self.scale,
                "bandwidth_mean": float(self.bandwidth_.mean()), "bandwidth_min": float(self.bandwidth_.min())}
        if hasattr(self, "heldout_curve_"):
            info["heldout_curve"] = self.heldout_curve_
        return info
