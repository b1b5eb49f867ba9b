"""Expectation-maximisation for Gaussian mixtures, written in torch (CPU or GPU).

Both EM steps are one matrix product each over a feature map of the codes,
``F(x) = [1, x, second moments of x]`` of width ``p`` (the upper triangle of ``x x^T`` for full/tied
covariances, ``x**2`` for diag/spherical):

- E-step: ``log w_k + log N(x | mu_k, S_k) = F(x) @ W[k]`` where ``W`` holds the constant, ``P mu`` and
  ``-P/2`` (``P`` the precision) of each component, so the (n, k) log-probabilities are one GEMM;
- M-step: the sufficient statistics ``(n_k, sum r x, sum r x x^T)`` are ``R^T F(x)``, one GEMM.

Codes are processed in batches (memory stays bounded for millions of codes) and E and M are fused in
one pass (``dtype="float64"``/``"float32"``; the default "mixed" runs gmm_mixed.em_pass instead and shares
the M-step and weights here).  In float64 the expansion of the quadratic form is exact to ~1e-12 for
reasonably conditioned covariances; the caller centres the codes first.  Covariances that are not positive
definite get the smallest diagonal jitter (10x steps) that makes their Cholesky factorisation succeed; it
is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from latentatlas.tensors import group_sums

COVARIANCE_TYPES = ("full", "diag", "tied", "spherical")


@dataclass
class Mixture:
    """Parameters in the centred frame: weights (k,), means (k, d), covariances (type-shaped), and the
    Cholesky factors of full/tied covariances ((k, d, d) / (1, d, d)) once logprob_weights has found them."""

    weights: torch.Tensor
    means: torch.Tensor
    covariances: torch.Tensor
    cholesky: torch.Tensor | None = None


def is_quadratic(covariance: str) -> bool:
    return covariance in ("full", "tied")


def n_features(d: int, covariance: str) -> int:
    return 1 + d + (d * (d + 1) // 2 if is_quadratic(covariance) else d)


def features(x: torch.Tensor, covariance: str, out: torch.Tensor | None = None, *,
             transposed: bool = False) -> torch.Tensor:
    """``[1, x, second moments]``: (b, p) for codes (b, d), or its transpose (p, b) when ``transposed``
    (faster to build and to multiply); written into ``out`` when given."""
    b, d = x.shape
    p = n_features(d, covariance)
    if out is None:
        out = x.new_empty((p, b) if transposed else (b, p))
    rows, xt = (out, x.T.contiguous()) if transposed else (out.T, x.T)   # (p, b) and (d, b) views
    rows[0] = 1
    rows[1:1 + d] = xt
    if is_quadratic(covariance):
        start = 1 + d
        for i in range(d):  # row i of the upper triangle: x_i * x_j, j >= i
            torch.mul(xt[i:i + 1], xt[i:], out=rows[start:start + d - i])
            start += d - i
    else:
        torch.mul(xt, xt, out=rows[1 + d:])
    return out


def _triu(d: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    iu = torch.triu_indices(d, d, device=device)
    return iu[0], iu[1]


def unpack_symmetric(v: torch.Tensor, d: int) -> torch.Tensor:
    """Upper-triangle vectors (..., d(d+1)/2) -> symmetric matrices (..., d, d)."""
    i, j = _triu(d, v.device)
    out = v.new_zeros(*v.shape[:-1], d, d)
    out[..., i, j] = v
    out[..., j, i] = v
    return out


def pack_quadratic(a: torch.Tensor) -> torch.Tensor:
    """Symmetric (..., d, d) -> weights w with ``w . triu(x x^T) = x^T a x`` (off-diagonals doubled)."""
    d = a.shape[-1]
    i, j = _triu(d, a.device)
    return a[..., i, j] * torch.where(i == j, 1.0, 2.0).to(a.dtype)


class FeatureBatches:
    """Iterates the feature map of codes ``x: (n, d)`` in row batches; caches them when ``cache``, else
    writes each batch into one reused buffer (valid until the next batch is drawn)."""

    def __init__(self, x: torch.Tensor, covariance: str, batch_size: int, cache: bool) -> None:
        self.x, self.covariance, self.batch_size = x, covariance, max(1, int(batch_size))
        self.n = x.shape[0]
        self._cache = [features(b, covariance) for b in x.split(self.batch_size)] if cache else None

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self._cache is not None:
            yield from self._cache
        else:
            p = n_features(self.x.shape[1], self.covariance)
            buf = self.x.new_empty(min(self.batch_size, self.n), p)
            for b in self.x.split(self.batch_size):
                yield features(b, self.covariance, out=buf[:len(b)])


def cholesky_jittered(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factors of (k, d, d) covariances, adding the smallest 10x-stepped diagonal jitter that
    makes each factorisation succeed.  Returns (L, added (k,))."""
    L, info = torch.linalg.cholesky_ex(cov)
    added = cov.new_zeros(cov.shape[0])
    bad = torch.nonzero(info > 0).flatten()
    if bad.numel() == 0:
        return L, added
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = cov[bad].diagonal(dim1=-2, dim2=-1).abs().mean(-1).clamp_min(torch.finfo(cov.dtype).tiny)
    jitter = scale * (10 * torch.finfo(cov.dtype).eps)
    for _ in range(40):
        Lb, info_b = torch.linalg.cholesky_ex(cov[bad] + jitter[:, None, None] * eye)
        ok = info_b == 0
        L[bad[ok]] = Lb[ok]
        added[bad[ok]] = jitter[ok]
        bad, jitter, scale = bad[~ok], jitter[~ok] * 10, scale[~ok]
        if bad.numel() == 0:
            return L, added
    raise FloatingPointError(f"covariances of components {bad.tolist()} could not be made positive definite")


def logprob_weights(mix: Mixture, covariance: str) -> tuple[torch.Tensor, torch.Tensor, Mixture]:
    """``W: (k, p)`` with ``F(x) @ W.T = log w_k + log N(x | k)``, the jitter added per component (k,),
    and the mixture with that jitter included in its covariances (and their Cholesky factors)."""
    w, mu, cov = mix.weights, mix.means, mix.covariances
    k, d = mu.shape
    const = torch.log(w) - 0.5 * d * math.log(2 * math.pi)
    L = None
    if is_quadratic(covariance):
        full = cov if covariance == "full" else cov[None]
        L, added = cholesky_jittered(full)
        if bool((added > 0).any()):
            full = full + added[:, None, None] * torch.eye(d, dtype=cov.dtype, device=cov.device)
            cov = full if covariance == "full" else full[0]
        prec = torch.cholesky_inverse(L)
        logdet_half = -torch.log(L.diagonal(dim1=-2, dim2=-1)).sum(-1)  # 0.5 log det P
        lin = (prec @ mu.unsqueeze(-1)).squeeze(-1) if covariance == "full" else mu @ prec[0]
        quad = -0.5 * pack_quadratic(prec).expand(k, -1)
        added = added.expand(k) if covariance == "tied" else added
        const = const + logdet_half - 0.5 * (mu * lin).sum(-1)
    else:
        floor = torch.finfo(cov.dtype).tiny ** 0.5
        added = (floor - cov).clamp_min(0)
        cov = cov + added
        var = cov if covariance == "diag" else cov[:, None].expand(k, d)
        added = added if covariance == "spherical" else added.amax(-1)
        prec = 1.0 / var
        lin = mu * prec
        quad = -0.5 * prec
        const = const - 0.5 * torch.log(var).sum(-1) - 0.5 * (mu * lin).sum(-1)
    W = torch.cat([const[:, None], lin, quad], dim=1)
    return W, added, Mixture(w, mu, cov, L)


def m_step(stats: torch.Tensor, covariance: str, reg_covar: float) -> Mixture:
    """Mixture parameters from sufficient statistics ``(k, p)`` rows ``[sum r, sum r x, sum r x2]``."""
    k, p = stats.shape
    d = (math.isqrt(8 * p + 1) - 3) // 2 if is_quadratic(covariance) else (p - 1) // 2
    nk = stats[:, 0] + 10 * torch.finfo(stats.dtype).eps
    means = stats[:, 1:1 + d] / nk[:, None]
    second = stats[:, 1 + d:]
    if covariance == "full":
        cov = unpack_symmetric(second / nk[:, None], d) - means[:, :, None] * means[:, None, :]
        cov = cov + reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)
    elif covariance == "tied":
        cov = unpack_symmetric(second.sum(0), d) - (nk[:, None] * means).T @ means
        cov = cov / nk.sum() + reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)
    else:
        var = second / nk[:, None] - means**2 + reg_covar
        cov = var if covariance == "diag" else var.mean(1)
    return Mixture(nk / nk.sum(), means, cov)


def em_pass(batches: FeatureBatches, W: torch.Tensor, *, stats: bool = True
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One fused E(+M statistics) pass: (sum of log-likelihoods float64 scalar, stats (k, p) or None)."""
    total = torch.zeros((), dtype=torch.float64, device=W.device)
    acc = torch.zeros(W.shape, dtype=W.dtype, device=W.device) if stats else None
    for F in batches:
        logp = F @ W.T
        norm = torch.logsumexp(logp, dim=1)
        total += norm.sum(dtype=torch.float64)
        if stats:
            acc += torch.exp_(logp.sub_(norm[:, None])).T @ F
    return total, acc


def hard_stats(batches: FeatureBatches, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Sufficient statistics (k, p) of the assignment of each code to the cluster ``labels: (n,)``."""
    acc = None
    for F, lab in zip(batches, labels.split(batches.batch_size)):
        part = group_sums(lab, F, k)
        acc = part if acc is None else acc + part
    return acc


@dataclass
class EMResult:
    mixture: Mixture
    W: torch.Tensor
    added: torch.Tensor
    lower_bound: float
    n_iter: int
    converged: bool
    history: list


def run_em(e_pass: Callable[[torch.Tensor, Mixture], tuple[torch.Tensor, torch.Tensor]], n: int, mix: Mixture,
           covariance: str, reg_covar: float, max_iter: int, tol: float) -> EMResult:
    """EM from ``mix`` until the mean log-likelihood of the ``n`` codes changes by less than ``tol`` or
    ``max_iter``; ``e_pass(W, mix)`` returns (sum of log-likelihoods, statistics) as ``em_pass``."""
    W, added, mix = logprob_weights(mix, covariance)
    lower, history, converged, it = -math.inf, [], False, 0
    for it in range(1, max_iter + 1):
        prev = lower
        total, stats = e_pass(W, mix)
        lower = float(total) / n
        mix = m_step(stats, covariance, reg_covar)
        W, added, mix = logprob_weights(mix, covariance)
        history.append(lower)
        if not math.isfinite(lower):
            raise FloatingPointError(f"EM diverged at iteration {it} (mean log-likelihood {lower})")
        if abs(lower - prev) < tol:
            converged = True
            break
    return EMResult(mix, W, added, lower, it, converged, history)
