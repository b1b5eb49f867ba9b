"""Seeding, generator helpers, and Gamma/Beta/Dirichlet draws that take a generator.

Library code never seeds global state: every random call takes a ``torch.Generator``.  Draws are made
on a CPU generator and moved to the target device, so the same seed gives the same numbers on the CPU
and on a GPU.
"""

from __future__ import annotations

import hashlib
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def make_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def derive_seed(seed: int, *names: str | int) -> int:
    """A stable child seed for a named stage, e.g. ``derive_seed(0, "sample", "gmm")``.

    Uses numpy's SeedSequence so that stages get independent, reproducible streams.
    """
    digest = hashlib.sha256("\x1f".join(str(n) for n in names).encode()).digest()
    entropy = [int(seed) % (2**32)] + list(np.frombuffer(digest, dtype=np.uint32))
    return int(np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, dtype=np.uint32)[0])


def randn(shape: tuple[int, ...], *, generator: torch.Generator | None, device: torch.device | str = "cpu",
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal draws made on the generator's device (CPU) and moved to ``device``."""
    return to_device(torch.randn(shape, generator=generator, dtype=dtype), device)


def to_device(draws: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``draws`` (made on the CPU; a tensor already on a device is moved as ``.to`` moves it) on ``device``.
    To a GPU through pinned memory without blocking: a copy from ordinary memory first waits for all the work
    queued on the GPU, which would stall every training step that draws noise (the pinned block is kept until
    its copy is done by torch's caching host allocator)."""
    device = torch.device(device)
    if device.type != "cuda" or draws.device.type != "cpu":
        return draws.to(device)
    return draws.pin_memory().to(device, non_blocking=True)


@contextmanager
def weights_from(generator: torch.Generator | None) -> Iterator[None]:
    """Networks built inside take their initial weights from ``generator``: torch's layers initialise from
    the global generator, which is forked, seeded by one draw of ``generator`` and restored after (None: the
    global generator as it is).  Without it a network built outside training would start differently in
    every process."""
    if generator is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):   # the CPU generator only: networks are built on the CPU, and
        torch.default_generator.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        yield                                 # torch.manual_seed would reseed the GPUs' too, unrestored


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch globals.  Only the CLI and the pipeline call this."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# -- draws that torch has no generator-taking sampler for -----------------------------------------
def gamma(alpha: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
    """Gamma(alpha, 1) draws, one per entry of ``alpha`` (any shape, entries > 0), by Marsaglia-Tsang."""
    alpha = alpha.detach().to("cpu", torch.float64)
    boost = alpha < 1  # Gamma(a) = Gamma(a + 1) * U^(1/a) for a < 1
    a = torch.where(boost, alpha + 1, alpha).flatten()
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(a)
    todo = torch.arange(a.numel())
    while todo.numel():
        x = torch.randn(todo.numel(), generator=generator, dtype=torch.float64)
        u = torch.rand(todo.numel(), generator=generator, dtype=torch.float64)
        v = (1 + c[todo] * x) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * x**2 + d[todo] - d[todo] * v + d[todo] * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = (d[todo] * v)[ok]
        todo = todo[~ok]
    out = out.view(alpha.shape)
    if bool(boost.any()):
        u = torch.rand(alpha.shape, generator=generator, dtype=torch.float64)
        out = torch.where(boost, out * u.pow(1.0 / alpha), out)
    return out


def beta(a: float, b: float, n: int, *, generator: torch.Generator | None) -> torch.Tensor:
    """Beta(a, b) draws: (n,) float64 on the CPU."""
    x = gamma(torch.full((n,), float(a), dtype=torch.float64), generator=generator)
    y = gamma(torch.full((n,), float(b), dtype=torch.float64), generator=generator)
    total = x + y
    # both gammas can underflow to 0 for tiny shapes; fall back to a fair coin between the ends
    coin = (torch.rand(n, generator=generator, dtype=torch.float64) < a / (a + b)).double()
    return torch.where(total > 0, x / total.clamp_min(1e-300), coin)


def dirichlet(alpha: float, n: int, m: int, *, generator: torch.Generator | None) -> torch.Tensor:
    """Dirichlet(alpha, ..., alpha) draws: (n, m) float64 on the CPU, rows summing to one."""
    g = gamma(torch.full((n, m), float(alpha), dtype=torch.float64), generator=generator)
    total = g.sum(1, keepdim=True)
    fallback = torch.zeros_like(g)
    fallback[torch.arange(n), torch.randint(m, (n,), generator=generator)] = 1.0
    return torch.where(total > 0, g / total.clamp_min(1e-300), fallback)


def categorical(probs: torch.Tensor, *, generator: torch.Generator | None) -> torch.Tensor:
    """One index per row of ``probs`` (n, K) (rows summing to 1), drawn by inverting each row's cumulative
    sum at a uniform from the CPU generator: (n,) long on the device of ``probs``, which never leave it (a
    GPU's probabilities copied to the CPU for ``torch.multinomial`` cost more than the draw)."""
    u = to_device(torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64), probs.device)
    cdf = probs.to(torch.float64).cumsum(1)
    return torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1).clamp_max_(probs.shape[1] - 1)


def choice(probs: torch.Tensor | None, size: int, n: int, *, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` indices in [0, size), uniform or in proportion to the weights ``probs: (size,)``; long on the CPU."""
    if probs is None:
        return torch.randint(size, (n,), generator=generator)
    return torch.multinomial(probs.detach().to("cpu", torch.float64), n, replacement=True, generator=generator)
