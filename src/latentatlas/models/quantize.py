"""Vector quantisation (van den Oord et al. 2017) with the codebook kept by exponential moving averages
(their appendix; Razavi et al. 2019) or learned by the codebook loss, k-means initialisation from the first
batch, dead-code reset, and codebook usage counted over whole epochs.

Shapes: encoder outputs ze (B, D, h, w) -> code indices (B, h, w) and quantised vectors zq (B, D, h, w).
EMA update with decay g after a batch whose vectors assigned to code i are {z_j}: counts
N_i <- g N_i + (1 - g) n_i, sums m_i <- g m_i + (1 - g) sum_j z_j, codebook e_i = m_i / N~_i with the
Laplace-smoothed N~_i = (N_i + eps) / (sum N + K eps) * sum N.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.models.base import full_precision
from latentatlas.rng import choice, to_device
from latentatlas.tensors import group_sums

UPDATES = ("ema", "loss")
EPS = 1e-5


class VectorQuantizer(nn.Module):
    """A codebook of ``size`` vectors of ``dim``; ``update`` 'ema' (decay) or 'loss'; codes unused for
    ``dead_after`` training steps are re-seeded from encoder outputs (0: never); ``kmeans_init`` runs 10
    Lloyd iterations on the first training batch."""

    def __init__(self, size: int, dim: int, *, update: str = "ema", decay: float = 0.99, dead_after: int = 100,
                 kmeans_init: bool = True) -> None:
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"model.codebook_update: expected one of {UPDATES}, got {update!r}")
        self.size, self.dim, self.update, self.decay = size, dim, update, decay
        self.dead_after, self.kmeans_init = dead_after, kmeans_init
        init = torch.randn(size, dim) / math.sqrt(dim)
        if update == "ema":
            self.register_buffer("codebook", init)
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", init.clone())
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_used", torch.zeros(size, dtype=torch.long))
        self.ready: bool | None = None   # ``initialized`` on the host (None: read it at the next training pass)
        self.epoch_counts: torch.Tensor | None = None   # not a buffer: per process, never broadcast or saved

    # -- assignment ------------------------------------------------------------------------------------
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of flat (M, D). -> (M,) long."""
        d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)[None])
        return d.min(1).indices   # argmin (first minimum on ties), at half argmin's time on CPU

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> vectors (B, D, h, w)."""
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2).contiguous()

    def forward(self, ze: torch.Tensor, generator: torch.Generator | None = None):
        """-> (zq with straight-through gradients (B, D, h, w), indices (B, h, w), losses {commitment, codebook}).
        Runs in float32 under mixed-precision training: 16-bit distances would change the assignment."""
        with torch.autocast(ze.device.type, enabled=False):
            return self._quantize(full_precision(ze), generator)

    def _quantize(self, ze: torch.Tensor, generator: torch.Generator | None):
        b, d, h, w = ze.shape
        flat = ze.permute(0, 2, 3, 1).reshape(-1, d)
        if self.training and not self._initialized():
            self._kmeans(flat.detach(), generator)
        indices = self.nearest(flat.detach())
        zq = self.lookup(indices.view(b, h, w))
        losses = {"commitment": F.mse_loss(ze, zq.detach())}
        if self.update == "loss":
            losses["codebook"] = F.mse_loss(zq, ze.detach())
        if self.training:
            self._track(indices)
            if self.update == "ema":
                self.ema_update(flat.detach(), indices)
            self._reset_dead(flat.detach(), generator)
        return ze + (zq - ze).detach(), indices.view(b, h, w), losses

    # -- codebook maintenance: no operation here waits for a GPU but the k-means start -----------------
    def _initialized(self) -> bool:
        if self.ready is None:   # after a build or a load: one read (a wait on a GPU), not one a step
            self.ready = bool(self.initialized)
        return self.ready

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self.ready = None

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """One EMA step of counts, sums and codebook from vectors flat (M, D) assigned to indices (M,)."""
        onehot = F.one_hot(indices, self.size).to(flat.dtype)
        self.ema_count.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(onehot.T @ flat, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + EPS) / (total + self.size * EPS) * total
        self.codebook.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _track(self, indices: torch.Tensor) -> None:
        self.steps += 1
        counts = indices.new_zeros(self.size, dtype=torch.float64).index_add_(   # whole numbers: exact in any order
            0, indices, torch.ones_like(indices, dtype=torch.float64))
        self.epoch_counts = counts if self.epoch_counts is None else self.epoch_counts + counts
        self.last_used.copy_(torch.where(counts > 0, self.steps, self.last_used))

    @torch.no_grad()
    def _reset_dead(self, flat: torch.Tensor, generator: torch.Generator | None) -> None:
        """Codes unused for ``dead_after`` steps take random encoder outputs of this batch (a row drawn for
        every code each step, used by the dead ones: counting them would wait for a GPU)."""
        if self.dead_after <= 0:
            return
        dead = (self.steps - self.last_used >= self.dead_after)[:, None]                  # (size, 1)
        rows = flat[to_device(choice(None, flat.shape[0], self.size, generator=generator), flat.device)]
        self.codebook.data.copy_(torch.where(dead, rows, self.codebook.data))
        self.ema_sum.copy_(torch.where(dead, rows, self.ema_sum))
        self.ema_count.masked_fill_(dead[:, 0], 1.0)
        self.last_used.copy_(torch.where(dead[:, 0], self.steps, self.last_used))

    @torch.no_grad()
    def _kmeans(self, flat: torch.Tensor, generator: torch.Generator | None, iters: int = 10) -> None:
        rows = to_device(choice(None, flat.shape[0], self.size, generator=generator), flat.device)
        centres = flat[rows].clone()
        for _ in range(iters):
            assign = torch.cdist(flat, centres).argmin(1)
            counts = torch.bincount(assign, minlength=self.size).to(flat.dtype)
            sums = group_sums(assign, flat, self.size)     # in a fixed order on a GPU too (reproducible)
            centres = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centres)
        self.codebook.data.copy_(centres)
        self.ema_sum.copy_(centres)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)
        self.ready = True

    def epoch_usage(self, reset: bool = True) -> dict[str, float]:
        """Codebook usage over the codes assigned since the last call: the fraction of codes used and the
        perplexity exp(H) of their frequencies (equal to the number of codes when all are used equally)."""
        counts = self.epoch_counts if self.epoch_counts is not None else self.codebook.new_zeros(self.size).double()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            counts = counts.clone()
            torch.distributed.all_reduce(counts)
        if reset:
            self.epoch_counts = None
        total = float(counts.sum())
        if total == 0:
            return {}
        p = counts / total
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        return {"codebook_usage": float((counts > 0).double().mean()), "codebook_codes_used": int((counts > 0).sum()),
                "codebook_perplexity": math.exp(entropy)}
