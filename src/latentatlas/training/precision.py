"""Mixed-precision training, ``train.precision``: ``auto`` (the default), ``fp32``, ``bf16`` or ``fp16``.

With bf16 or fp16 each phase's forward pass and loss run under :func:`torch.autocast`: matrix products and
convolutions in the 16-bit type, while weights, gradients and optimizer state stay float32 (the model's
checkpoints are float32 whatever the setting).  Losses, posteriors and the VQ codebook's assignment are
computed in float32 (:func:`latentatlas.models.base.full_precision`).  bf16 has float32's range and needs no
loss scaling; it pays on CPUs with bfloat16 dot-product units (Intel AMX, e.g. Sapphire Rapids; AVX512-BF16,
e.g. AMD Zen 4), and on GPUs for networks large enough to keep one busy.
fp16's range is narrow, so its steps go through a :class:`torch.amp.GradScaler` per phase, which skips a
step whose gradients overflowed and adapts the scale; the scalers are saved in checkpoints so that a resumed
run continues with the same scale.  A gradient penalty (WGAN-GP, R1) is taken inside the loss, unscaled:
under fp16 prefer bf16 for those models.
``auto`` resolves to bf16 on a CPU with bfloat16 units (Intel AMX or AVX512-BF16, where bf16 trained every
MNIST family 1.02-2.0x as fast at the same quality in the benches, bench/RESULTS.md) and to fp32 elsewhere: a
CPU without them emulates bfloat16, slower than float32, and on a GPU (an H200) bf16 autocast trained the
shipped networks slower than fp32 (the face VAE 0.85x, the MNIST VAE 0.98x: at their sizes a step is kernel
launches, and autocast's casts add some); the run records what it chose.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterable

import torch

from latentatlas.config import PRECISIONS

log = logging.getLogger(__name__)

DTYPES = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16)))   # the autocast type of each precision


def resolve_precision(name: str, device: torch.device) -> str:
    """``name``, or for "auto" the precision for ``device``: bf16 on a CPU with bfloat16 units, else fp32."""
    if name != "auto":
        return name
    return "bf16" if torch.device(device).type == "cpu" and _cpu_has_bf16_units() else "fp32"


def _cpu_has_bf16_units() -> bool:
    """Whether this CPU computes bfloat16 dot products natively: Intel AMX tiles or AVX512-BF16
    (``amx_bf16`` / ``avx512_bf16`` in /proc/cpuinfo); False where torch cannot tell."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(bool(probe()) for probe in probes if probe is not None)


class Precision:
    """The autocast context and the backward/optimizer step of one training run's precision ``name`` (one of
    config.PRECISIONS, or "auto": ``name`` then holds what it resolved to) on ``device``, with a gradient
    scaler per phase name in ``phases`` for fp16."""

    def __init__(self, name: str, device: torch.device, phases: Iterable[str]) -> None:
        self.device = torch.device(device)
        self.name = resolve_precision(name, self.device)
        self.dtype = DTYPES[self.name]
        if name == "auto":
            log.info("train.precision auto: %s on %s", self.name, self.device)
        self.scalers = {p: torch.amp.GradScaler(self.device.type) for p in phases} if self.name == "fp16" else {}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the 16-bit type, or a null context for fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, phase: str) -> None:
        """``loss.backward()`` then ``optimizer.step()``; under fp16 through the phase's scaler."""
        scaler = self.scalers.get(phase)
        if scaler is None:
            loss.backward()
            optimizer.step()
            return
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scalers' states by phase ({} unless fp16), for the checkpoint."""
        return {p: s.state_dict() for p, s in self.scalers.items()}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        """Restore the scalers saved by a checkpoint; a phase the checkpoint lacks (it was trained in
        another precision) keeps a fresh scaler."""
        for phase, scaler in self.scalers.items():
            if phase in states:
                scaler.load_state_dict(states[phase])
