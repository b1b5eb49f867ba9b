"""Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020), chunked.

Definitions as in Naeem et al. (and their ``prdc`` package): with r_i the distance of real i to its
k-th nearest real neighbour (itself excluded) and s_j the same among fakes,

    precision = mean_j [exists i: d(r_i, f_j) < r_i]      recall   = mean_i [exists j: d(r_i, f_j) < s_j]
    density   = mean_j  sum_i [d(r_i, f_j) < r_i] / k      coverage = mean_i [min_j d(r_i, f_j) < r_i]

No N x N matrix is ever held: distances are computed in blocks that stay under ``max_chunk_bytes``,
so memory is O(N D + chunk N); the k-NN radii use only the upper triangle of blocks (symmetry).
Distances are squared Euclidean computed as |a|^2 + |b|^2 - 2 a.b in ``dtype`` (float32 by default;
all comparisons are between values computed the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latentatlas.tensors import DEFAULT_CHUNK_BYTES, as_features, chunk_rows, sq_dists  # noqa: F401

def knn_radii(x: Any, k: int, *, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> torch.Tensor:
    """Distance of each row of x (N, D) to its k-th nearest other row (self excluded): (N,) float64."""
    x = as_features(x, "x", dtype, device)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k: expected 1 <= k < {x.shape[0]} (number of rows), got {k}")
    return _sq_radii(x, (x * x).sum(1), k, max_chunk_bytes).sqrt().double().cpu()


def _sq_radii(x: torch.Tensor, x_sq: torch.Tensor, k: int | tuple[int, ...],
              max_chunk_bytes: int) -> torch.Tensor:
    """Squared k-th neighbour distances; for a tuple of k, one column per k: (N,) or (N, len(k)).

    Distances are symmetric, so only the upper triangle of the N x N matrix is computed: row block i
    against rows i.. (about half the work); each block's m smallest per row update its rows, and the m
    smallest per column (right of the diagonal block) update those columns' rows.  Only (m, .) results
    are merged: the block itself is never copied or transposed."""
    ks = (k,) if isinstance(k, int) else tuple(k)
    m, n = max(ks) + 1, x.shape[0]
    rows = max(m, min(2048, chunk_rows(n, max_chunk_bytes, x.element_size())))
    best = torch.full((n, m), float("inf"), dtype=x.dtype, device=x.device)

    def merge(at: slice, found: torch.Tensor) -> None:
        best[at] = torch.topk(torch.cat([best[at], found], 1), m, dim=1, largest=False, sorted=False).values

    for i in range(0, n, rows):
        stop = min(i + rows, n)
        d = sq_dists(x[i:stop], x_sq[i:stop], x[i:], x_sq[i:])                  # (rows, n - i)
        merge(slice(i, stop), torch.topk(d, m, dim=1, largest=False, sorted=False).values)
        if stop < n:
            right = d[:, stop - i:]
            merge(slice(stop, n), torch.topk(right, min(m, right.shape[0]), dim=0, largest=False,
                                             sorted=False).values.T)
    # the m smallest include the row itself (distance ~0): column k of the sorted row is the k-th neighbour
    out = best.sort(dim=1).values[:, list(ks)]
    return out[:, 0] if isinstance(k, int) else out


def prdc_real_radii(real: Any, k: int = 5, *, k_dc: int | None = None,
                    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """The reference-only part of :func:`prdc`: squared distances (N, 2) in ``dtype`` of each real row
    to its k-th and k_dc-th nearest other real row; pass it back as ``prdc(..., real_radii=...)``."""
    k_dc = k if k_dc is None else k_dc
    real = as_features(real, "real", dtype, device)
    _check_k(k, k_dc, "real", real.shape[0])
    return _sq_radii(real, (real * real).sum(1), (k, k_dc), max_chunk_bytes)


def _check_k(k: Any, k_dc: Any, name: str, n: int) -> None:
    for kname, kv in (("k", k), ("k_dc", k_dc)):
        if not isinstance(kv, int) or not 1 <= kv < n:
            raise ValueError(f"{kname}: expected an int 1 <= {kname} < number of {name} rows ({n}), got {kv!r}")


def _given_radii(real_radii: Any, n: int, dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
    t = real_radii if isinstance(real_radii, torch.Tensor) else torch.from_numpy(np.asarray(real_radii))
    if t.shape != (n, 2) or not torch.is_floating_point(t):
        raise ValueError(f"real_radii: expected a float (N, 2) = ({n}, 2) array of squared k / k_dc radii "
                         f"(prdc_real_radii), got {t.dtype} {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype)


def prdc(real: Any, fake: Any, k: int = 5, *, k_dc: int | None = None, real_radii: Any = None,
         max_chunk_bytes: int = DEFAULT_CHUNK_BYTES, dtype: torch.dtype = torch.float32,
         device: str | torch.device = "cpu") -> dict[str, float]:
    """Precision, recall, density and coverage of fake (M, D) features against real (N, D) features.

    Argument order is (real, fake).  ``k`` is the neighbour count of the radii for precision and recall
    and, unless ``k_dc`` is given, for density and coverage too (Kynkäänniemi et al. use k=3 for
    precision/recall, Naeem et al. k=5 for density/coverage: ``prdc(r, f, 3, k_dc=5)``, one pass).
    ``real_radii``: the (N, 2) output of ``prdc_real_radii(real, k, k_dc=k_dc, dtype=dtype)``, computed
    once per reference; the result is then bit-identical to the call without it (see PRDCReference).
    """
    k_dc = k if k_dc is None else k_dc
    real = as_features(real, "real", dtype, device)
    fake = as_features(fake, "fake", dtype, device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"fake: expected {real.shape[1]} feature columns like real, got {fake.shape[1]}")
    _check_k(k, k_dc, "real", real.shape[0])
    _check_k(k, k_dc, "fake", fake.shape[0])
    r_sq, f_sq = (real * real).sum(1), (fake * fake).sum(1)
    if real_radii is None:
        real_r = _sq_radii(real, r_sq, (k, k_dc), max_chunk_bytes)        # (N, 2): k, k_dc
    else:
        real_r = _given_radii(real_radii, real.shape[0], dtype, real.device)
    fake_r = _sq_radii(fake, f_sq, k, max_chunk_bytes).unsqueeze(0)       # (1, M)
    in_pr = torch.zeros(fake.shape[0], dtype=torch.bool, device=real.device)    # fake inside some real ball
    in_dc = torch.zeros(fake.shape[0], dtype=torch.int64, device=real.device)   # number of real balls (k_dc)
    recalled = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    covered = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    step = chunk_rows(fake.shape[0], max_chunk_bytes, real.element_size())
    for s in range(0, real.shape[0], step):
        d = sq_dists(real[s:s + step], r_sq[s:s + step], fake, f_sq)       # (chunk, M)
        rad_pr, rad_dc = real_r[s:s + step, 0:1], real_r[s:s + step, 1:2]
        inside = d < rad_dc
        hit = inside.any(0)
        in_pr |= hit if k == k_dc else (d < rad_pr).any(0)
        cols = hit.nonzero().squeeze(1)           # balls are small: count only the columns with a hit
        in_dc[cols] += inside[:, cols].sum(0, dtype=torch.int64)
        covered[s:s + step] = inside.any(1)
        recalled[s:s + step] = (d < fake_r).any(1)
    return {"precision": float(in_pr.double().mean()), "recall": float(recalled.double().mean()),
            "density": float(in_dc.double().mean() / k_dc), "coverage": float(covered.double().mean())}


@dataclass(frozen=True)
class PRDCReference:
    """Real features (N, D) converted once to ``dtype``/device, with their squared k / k_dc radii (N, 2):
    build once per reference with :meth:`build`, then ``ref.score(fake)`` for each sample set."""

    features: torch.Tensor
    radii: torch.Tensor
    k: int = 3
    k_dc: int = 5
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES

    @classmethod
    def build(cls, real: Any, k: int = 3, *, k_dc: int | None = 5, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
              dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> "PRDCReference":
        k_dc = k if k_dc is None else k_dc
        feats = as_features(real, "real", dtype, device)
        radii = prdc_real_radii(feats, k, k_dc=k_dc, max_chunk_bytes=max_chunk_bytes, dtype=dtype, device=device)
        return cls(feats, radii, k, k_dc, max_chunk_bytes)

    def score(self, fake: Any) -> dict[str, float]:
        """prdc(real, fake, k, k_dc=k_dc) of fake (M, D), without recomputing the real radii."""
        return prdc(self.features, fake, self.k, k_dc=self.k_dc, real_radii=self.radii,
                    max_chunk_bytes=self.max_chunk_bytes, dtype=self.features.dtype, device=self.features.device)
