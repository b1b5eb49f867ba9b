"""Each phase's Adam, and the learning-rate schedules (``train.lr_schedule``): the factor on every phase's
configured learning rate at each batch, a pure function of the batch count, so a resumed or data-parallel run
needs no scheduler state (the count is in every checkpoint and the same on every rank).

- ``constant``: the configured rates throughout.
- ``cosine``: a half cosine from the configured rate at the first batch to zero after the last planned one
  (Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts); the plan is ``train.epochs`` epochs, or
  ``train.max_steps`` batches when fewer.  ``train.max_minutes`` does not shorten the plan (its end is not
  known in advance).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from latentatlas.config import LR_SCHEDULES, TrainConfig
from latentatlas.optim import adam


def phase_adam(phase, cfg: TrainConfig) -> torch.optim.Adam:
    """The phase's Adam (:func:`latentatlas.optim.adam`): its own lr / betas / weight decay where set, the
    run's otherwise."""
    opt = phase.optim
    return adam(phase.parameters(), lr=cfg.lr if opt.lr is None else opt.lr, betas=tuple(opt.betas),
                weight_decay=cfg.weight_decay if opt.weight_decay is None else opt.weight_decay)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The factor at 0-based batch ``step`` of a plan of ``total`` batches: 1 for ``constant``;
    ``(1 + cos(pi * step / total)) / 2`` for ``cosine`` (1 at step 0, 0 from step ``total`` on)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    raise ValueError(f"train.lr_schedule: expected one of {list(LR_SCHEDULES)}, got {schedule!r}")


def planned_batches(cfg: TrainConfig, batches_per_epoch: int) -> int:
    """The batches a training of ``cfg`` plans to run: its epochs, or ``max_steps`` when fewer."""
    total = cfg.epochs * batches_per_epoch
    return total if cfg.max_steps is None else min(total, cfg.max_steps)


class LrSchedule:
    """Sets the learning rate of every optimizer's parameter groups to configured rate x factor before a
    batch, and keeps the configured rates (not the scheduled ones) in the optimizer states it saves."""

    def __init__(self, schedule: str, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        self.schedule, self.optimizers = schedule, optimizers
        self.base = {name: [group["lr"] for group in opt.param_groups] for name, opt in optimizers.items()}

    def apply(self, step: int, total: int) -> None:
        """Set the rates of 0-based batch ``step`` of ``total``."""
        factor = lr_factor(self.schedule, step, total)
        for name, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self.base[name]):
                group["lr"] = base * factor

    def rates(self) -> dict[str, float]:
        """The current rate of each phase (its first parameter group's): {'lr': ...} for a one-phase model,
        {'lr_<phase>': ...} otherwise."""
        if len(self.optimizers) == 1:
            return {"lr": next(iter(self.optimizers.values())).param_groups[0]["lr"]}
        return {f"lr_{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}

    def state_dict(self, name: str) -> dict[str, Any]:
        """Optimizer ``name``'s state dict with the configured rates, as a resume expects them."""
        state = self.optimizers[name].state_dict()   # param_groups are fresh dicts: safe to edit
        for group, base in zip(state["param_groups"], self.base[name]):
            group["lr"] = base
        return state
