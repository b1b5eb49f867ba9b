"""Training state, result and errors, and TrainConfig validation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from latentatlas.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the epoch and step."""


@dataclass
class TrainResult:
    """Outcome of :func:`~latentatlas.training.trainer.train`.

    ``epochs_run`` and ``steps`` count the whole run (including epochs before a resume); ``history`` is
    the list of metrics.jsonl lines; ``checkpoint`` the path of best.pt, the run's chosen weights.
    """

    epochs_run: int
    steps: int
    best_val_loss: float
    stopped_early: bool
    reason: str
    history: list[dict]
    device: str
    best_epoch: int | None = None
    checkpoint: str | None = None


@dataclass
class TrainState:
    """Counters saved in every checkpoint; ``epoch`` is the number of completed epochs."""

    epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    callback_stop: bool = False
    history: list[dict] = field(default_factory=list)

    def to_checkpoint(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "best_val_loss": float(self.best_val_loss),
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "callback_stop": self.callback_stop,
                "history": [dict(line) for line in self.history]}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "TrainState":
        missing = [k for k in ("epoch", "step", "optimizers", "generator_state") if k not in ckpt]
        if missing:
            raise ValueError(f"resume: the checkpoint has no training state (missing {missing})")
        return cls(epoch=int(ckpt["epoch"]), step=int(ckpt["step"]),
                   best_val_loss=float(ckpt.get("best_val_loss", math.inf)), best_epoch=ckpt.get("best_epoch"),
                   bad_epochs=int(ckpt.get("bad_epochs", 0)), callback_stop=bool(ckpt.get("callback_stop", False)),
                   history=list(ckpt.get("history", [])))


def _int_at_least(name: str, value: object, low: int, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        extra = " or None" if optional else ""
        raise ValueError(f"train.{name}: expected an int >= {low}{extra}, got {value!r}")


def check_train_config(cfg: TrainConfig) -> None:
    """Raise a ValueError naming the field for any invalid value of ``cfg``."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg: expected a TrainConfig, got {type(cfg).__name__}")
    _int_at_least("epochs", cfg.epochs, 1)
    _int_at_least("batch_size", cfg.batch_size, 1)
    _int_at_least("patience", cfg.patience, 1, optional=True)
    _int_at_least("max_steps", cfg.max_steps, 1, optional=True)
    for name in ("lr", "weight_decay"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"train.{name}: expected a finite number >= 0, got {value!r}")


def jsonable(value: Any) -> Any:
    """Callback values as JSON: tensors and numpy scalars become numbers, containers are converted."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
