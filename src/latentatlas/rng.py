"""Seeding and generator helpers.

Library code never seeds global state: every random call takes a ``torch.Generator``.  Draws are made
on a CPU generator and moved to the target device, so the same seed gives the same numbers on the CPU
and on a GPU.
"""

from __future__ import annotations

import hashlib
import random

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
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch globals.  Only the CLI and the pipeline call this."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
