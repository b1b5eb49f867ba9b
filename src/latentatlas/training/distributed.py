"""The device a run trains on, and data-parallel helpers for runs launched with ``torchrun`` (WORLD_SIZE > 1).

Every rank shuffles with the same seeded generator, so all ranks agree on each global batch; rank r
takes the rows ``shard_bounds(n, r, world)`` of it.  With the loss of a shard scaled by
``rows * world / n`` the gradient that DDP averages equals the single-process gradient of the batch.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Rank and world size of this process; ``owns_group`` when :func:`setup` created the process group."""

    world: int = 1
    rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (identity on one process)."""
        if self.active:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def from_main(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's value of ``flag`` on every rank."""
        if not self.active:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.broadcast(t, src=0)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if :func:`setup` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join (or create) the process group when launched with WORLD_SIZE > 1.

    Uses nccl on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``) and gloo on the CPU.  Returns the context
    and the device this rank trains on.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
    if world <= 1:
        return DistContext(), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    ctx = DistContext(world=dist.get_world_size(), rank=dist.get_rank(), owns_group=owns)
    log.info("data-parallel training: rank %d of %d on %s", ctx.rank, ctx.world, device)
    return ctx, device


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [lo, hi) of a global batch of ``n`` rows taken by ``rank``; the first n % world ranks get one more."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def resolve_device(name: str) -> torch.device:
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:N' or 'mps' -> torch.device."""
    if not isinstance(name, str):
        raise TypeError(f"train.device: expected a string like 'auto', 'cpu' or 'cuda:0', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"train.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"train.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device: {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"train.device: {name!r} requested but only {torch.cuda.device_count()} GPU(s) are "
                             "visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("train.device: 'mps' requested but MPS is not available; use 'cpu' or 'auto'")
    return device


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` of Linux's /proc/cpuinfo, stripped; None where there is no such line or file."""
    try:
        found = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        return None
    return found.group(1).strip() if found else None


def cpu_name() -> str | None:
    """The CPU's model name (Linux's /proc/cpuinfo, else the platform's processor string); None where unknown.
    Runs record it in env.json: the CPU changes the seconds, and which bfloat16 units ``auto`` finds."""
    return _cpuinfo_field("model name") or platform.processor() or None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (/proc/cpuinfo's ``flags``, e.g. ``amx_bf16``, ``avx512_bf16``); None where unknown."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else set(flags.split())
