"""Training state, result and errors, TrainConfig validation, and the row-weighted means of logged terms."""

from __future__ import annotations

import logging
import math
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from latentatlas.config import TrainConfig
from latentatlas.tensors import host_values
from latentatlas.validate import check_fields

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite (or grew past ``train.loss_growth_limit`` with ``loss_growth_error``);
    the message names the epoch and step and the last checkpoint, if one exists."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the current epoch is discarded; ``checkpoint`` is the last one written or
    restored (None when there is none), the message says so."""

    def __init__(self, message: str, checkpoint: str | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


class CtrlC:
    """Ctrl-C during training as a request, acted on at the next batch (:meth:`check` raises
    ``KeyboardInterrupt``) rather than wherever the interpreter happens to be: an exception raised by
    the default handler inside a finaliser or garbage-collector callback is printed as "Exception
    ignored" and lost, and the training would go on.  A second Ctrl-C raises at once.  Installed only
    in the main thread and only over Python's default handler (an application's own handler is kept)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "CtrlC":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._request)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc_type is None:
            self.check()          # pressed after the last batch: the command still stops

    def _request(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the guard was entered."""
        if self.requested:
            raise KeyboardInterrupt


@dataclass
class TrainResult:
    """Outcome of :func:`~latentatlas.training.trainer.train`.

    ``epochs_run`` and ``steps`` count the whole run (including epochs before a resume); ``history`` is
    the list of metrics.jsonl lines; ``checkpoint`` the path of best.pt, the run's chosen weights, picked
    by the lowest ``best_score`` of the model's ``selection_metric``.
    """

    epochs_run: int
    steps: int
    best_score: float
    selection_metric: str
    stopped_early: bool
    reason: str
    history: list[dict]
    device: str
    precision: str = "fp32"             # the precision it trained in (train.precision "auto" resolved)
    best_epoch: int | None = None
    checkpoint: str | None = None
    train_seconds: float = 0.0          # time in training batches over the whole run


@dataclass
class TrainState:
    """Counters saved in every checkpoint; ``epoch`` is the number of completed epochs."""

    epoch: int = 0
    step: int = 0
    best_score: float = math.inf
    best_epoch: int | None = None
    bad_epochs: int = 0
    callback_stop: bool = False
    train_seconds: float = 0.0          # time spent in training batches, all epochs (for train.max_minutes)
    history: list[dict] = field(default_factory=list)
    loss_reference: dict[str, float] = field(default_factory=dict)   # |first loss| per phase (at least 1)

    def to_checkpoint(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "best_score": float(self.best_score),
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "callback_stop": self.callback_stop,
                "train_seconds": self.train_seconds, "loss_reference": dict(self.loss_reference),
                "history": [dict(line) for line in self.history]}

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any]) -> "TrainState":
        missing = [k for k in ("epoch", "step", "optimizers", "generator_state") if k not in ckpt]
        if missing:
            raise ValueError(f"resume: the checkpoint has no training state (missing {missing})")
        return cls(epoch=int(ckpt["epoch"]), step=int(ckpt["step"]),
                   best_score=float(ckpt.get("best_score", ckpt.get("best_val_loss", math.inf))),
                   best_epoch=ckpt.get("best_epoch"),
                   bad_epochs=int(ckpt.get("bad_epochs", 0)), callback_stop=bool(ckpt.get("callback_stop", False)),
                   train_seconds=float(ckpt.get("train_seconds", 0.0)),
                   history=list(ckpt.get("history", [])),
                   loss_reference={str(k): float(v) for k, v in dict(ckpt.get("loss_reference", {})).items()})


class LossGrowth:
    """Watches each phase's batch loss against its first value (at least 1, kept in the state so a resumed
    run compares with the same one): past ``limit`` times it, warn once per phase, or with ``error`` return
    the problem to stop on."""

    def __init__(self, limit: float | None, error: bool) -> None:
        self.limit, self.error = limit, error
        self.warned: set[str] = set()

    def check(self, phase: str, value: float, state: TrainState, where: str) -> str | None:
        """The problem to stop on, or None; ``where`` ("at epoch E, step S") goes into the warning."""
        reference = state.loss_reference.setdefault(phase, max(abs(value), 1.0))
        if self.limit is None or abs(value) <= self.limit * reference:
            return None
        growth = (f"the {phase} loss grew from {reference:.4g} to {value:.4g}, more than "
                  f"train.loss_growth_limit={self.limit:g} times")
        if self.error:
            return growth
        if phase not in self.warned:
            self.warned.add(phase)
            log.warning("%s %s: lower train.lr (or set train.loss_growth_error=true to stop on this)", growth, where)
        return None


class StepLog:
    """The epoch's training steps: each phase step's loss and terms, kept as tensors (no kernel, no wait) and
    read to the host together every ``every`` phase steps (one copy, so one wait on a GPU); there, in step
    order, they are checked (a non-finite loss, a divergence the model names with ``divergence(terms) -> str |
    None``, growth past the limit of :class:`LossGrowth`) and added to the epoch's row-weighted means.

    Reading a loss on a GPU waits for all the work queued there, so reading every step would stall the
    pipeline; a problem is still reported at the step where it happened.  With ``every`` 1 (the CPU, where a
    read costs nothing) each phase step is checked before its update."""

    def __init__(self, growth: LossGrowth, divergence, every: int) -> None:
        self.growth, self.divergence, self.every = growth, divergence, int(every)
        self.means = RowMeans()
        self.records: list[tuple[str, str, int, int]] = []   # (phase, prefix, epoch, step) of means.pending

    def watch(self, phase: str, prefix: str, total: torch.Tensor, terms: dict[str, torch.Tensor], rows: int,
              state: TrainState) -> None:
        """Keep a phase step's loss (a scalar tensor) and terms, logged as ``<prefix>loss`` and
        ``<prefix><term>``, for ``rows`` rows of the batch."""
        self.means.add({prefix + "loss": total, **{prefix + k: v for k, v in terms.items()}}, rows)
        self.records.append((phase, prefix, state.epoch, state.step))

    @property
    def due(self) -> bool:
        return len(self.records) >= self.every

    def read(self, state: TrainState, rank: int) -> str | None:
        """Read the pending steps (one wait) in order -> the first problem, with where it happened, or None."""
        records, self.records = self.records, []
        for (phase, prefix, epoch, step), values in zip(records, self.means.read()):
            value, where = values[prefix + "loss"], f"at epoch {epoch + 1}, step {step + 1}"
            if not math.isfinite(value):
                return f"non-finite {phase} loss ({value:.4g} on rank {rank}) {where}"
            terms = {k[len(prefix):]: v for k, v in values.items() if k != prefix + "loss"}
            problem = self.divergence(terms) or self.growth.check(phase, value, state, where)
            if problem is not None:
                return f"{problem} {where}"
        return None

    def epoch_means(self, dist, device: torch.device) -> dict[str, float]:
        """The epoch's means over every rank (read the pending steps first), and a fresh start for the next."""
        means, self.means = self.means, RowMeans()
        return means.reduce(dist, device)


def check_train_config(cfg: TrainConfig) -> None:
    """Raise a ValueError naming the field for any invalid value of ``cfg``."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg: expected a TrainConfig, got {type(cfg).__name__}")
    check_fields(cfg, "train")


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


class RowMeans:
    """Row-weighted means of logged scalar terms, each over the batches where it was logged.  ``add`` keeps a
    batch's terms as tensors (no kernel); ``read`` takes the pending ones to the host in one copy (one wait on a
    GPU) and adds them to float64 sums."""

    def __init__(self) -> None:
        self.pending: list[tuple[dict[str, torch.Tensor], int]] = []
        self.sums: dict[str, float] = {}
        self.rows: dict[str, int] = {}

    def add(self, terms: dict[str, torch.Tensor], rows: int) -> None:
        self.pending.append(({k: v.detach() for k, v in terms.items()}, rows))

    def read(self) -> list[dict[str, float]]:
        """The pending batches' terms as numbers, batch by batch, after adding them to the sums."""
        pending, self.pending = self.pending, []
        batches = host_values([terms for terms, _ in pending])
        for values, (_, rows) in zip(batches, pending):
            for k, v in values.items():
                self.sums[k] = self.sums.get(k, 0.0) + v * rows
                self.rows[k] = self.rows.get(k, 0) + rows
        return batches

    def reduce(self, dist, device: torch.device) -> dict[str, float]:
        """Means over every rank (one all-reduce when data-parallel)."""
        self.read()
        keys = sorted(self.sums)
        sums, rows = [self.sums[k] for k in keys], [float(self.rows[k]) for k in keys]
        if dist.active:
            packed = dist.sum(torch.tensor(sums + rows + [0.0], dtype=torch.float64, device=device)).tolist()
            sums, rows = packed[:len(keys)], packed[len(keys):-1]
        return {k: s / r for k, s, r in zip(keys, sums, rows) if r}
