"""One training loop for every family: each batch steps the model's phases in turn, each phase with its
own Adam optimizer and settings (:class:`~latentatlas.models.base.Phase`).

Run folder: ``checkpoints/last.pt`` with the latest epoch's state, ``checkpoints/best.pt`` with the state of
the epoch whose selection score was best (the run's chosen weights), and ``metrics.jsonl`` with one line per
epoch.  last.pt is written after every epoch unless writing it would take more than
``train.checkpoint_overhead`` of the time (short epochs on a fast GPU:
:class:`~latentatlas.training.checkpoint.WriteCadence`); the state of the latest epoch (and of the best) is
then kept in memory and written when due, at the end, on Ctrl-C and on an error::

    {"epoch": 1, "step": 40, "seconds": 2.1, "train_loss": ..., "train_recon": ..., "val_loss": ...,
     "val_recon": ..., "lr": ..., "best_val_loss": ..., <keys returned by callbacks>}

The selection score is the line's ``model.selection_metric`` (lower is better): ``val_loss`` for
likelihood models (``train_loss`` when there is no validation split), ``monitor_frechet`` for GANs (logged
by the sample-quality monitor callback); ``best_<metric>`` holds the best so far.  ``lr`` is the learning
rate of the epoch's last batch (``train.lr_schedule``: :mod:`latentatlas.training.schedule`).  Multi-phase
models log ``train_<phase>_<term>`` and ``lr_<phase>``.  Epochs are counted from 1 (``epoch`` = epochs
completed).  Shuffling, the mirror flips of ``train.hflip`` and all training noise come from one CPU
generator seeded with ``seed`` and saved in every checkpoint, so ``resume=True`` continues a killed run to
the same weights as an uninterrupted one.  Validation uses the model's ``validation_loss`` with a generator
re-seeded every epoch, so it is deterministic, and in float32 whatever ``train.precision`` (bf16/fp16 run
the training forward passes under autocast: :mod:`latentatlas.training.precision`).  Under ``torchrun`` the
run is data-parallel (see :mod:`latentatlas.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from latentatlas.config import TrainConfig
from latentatlas.data.base import ImageDataset
from latentatlas.fileio import remove_stale_temporaries
from latentatlas.models.base import Batch, batch_shard, checked_labels
from latentatlas.progress import progress_bar
from latentatlas.rng import derive_seed, make_generator, to_device
from latentatlas.training import checkpoint as ckpt_io
from latentatlas.training.batches import batch_rows, device_parts
from latentatlas.training.distributed import resolve_device
from latentatlas.training.distributed import setup as setup_distributed
from latentatlas.training.distributed import shard_bounds
from latentatlas.training.precision import Precision
from latentatlas.training.schedule import LrSchedule, phase_adam, planned_batches
from latentatlas.training.state import (CtrlC, LossGrowth, RowMeans, StepLog, TrainingDiverged,
                                       TrainingInterrupted, TrainResult, TrainState, check_train_config, jsonable)
from latentatlas.validate import check_finite

log = logging.getLogger(__name__)

__all__ = ["train", "resolve_device", "TrainResult", "TrainingDiverged", "TrainingInterrupted"]

HEALTH_EVERY = {"cpu": 1}   # phase steps whose losses and terms are read together, by device (others: 32)


class _PhaseRunner(nn.Module):
    """Routes ``forward(x, y, i, ...)`` to phase i's loss so that DDP sees every training forward pass."""

    def __init__(self, model: nn.Module, phases: list) -> None:
        super().__init__()
        self.model = model
        self.phase_list = phases

    def forward(self, x: torch.Tensor, y: torch.Tensor | None, index: int, generator: torch.Generator,
                progress: float):
        return self.phase_list[index].loss(Batch(x, y), generator=generator, progress=progress)


class _Trainer:
    def __init__(self, model: nn.Module, data: ImageDataset, cfg: TrainConfig, run_dir: Path, seed: int,
                 callbacks: Sequence) -> None:
        check_train_config(cfg)
        self.cfg, self.seed, self.callbacks = cfg, int(seed), list(callbacks)
        self.dist, self.device = setup_distributed(resolve_device(cfg.device))
        self.model = model.to(self.device)
        self.train_part, self.val_part = device_parts(data, model, self.device)
        self.phases = model.phases()
        self.optimizers = {p.name: phase_adam(p, cfg) for p in self.phases}
        self.precision = Precision(cfg.precision, self.device, self.optimizers)
        self.schedule = LrSchedule(cfg.lr_schedule, self.optimizers)
        self.round = max(p.repeat for p in self.phases)
        self.metric = model.selection_metric
        runner = _PhaseRunner(model, self.phases)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            runner = DistributedDataParallel(runner, device_ids=[self.device.index] if self.device.type == "cuda"
                                             else None, find_unused_parameters=len(self.phases) > 1)
        self.runner = runner
        self.generator = make_generator(self.seed)
        self.state = TrainState()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.run_dir = Path(run_dir)
        self.checkpoints = ckpt_io.TrainingCheckpoints(self.run_dir / "checkpoints", cfg.checkpoint_overhead)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.steps = StepLog(LossGrowth(cfg.loss_growth_limit, cfg.loss_growth_error), model.divergence,
                             HEALTH_EVERY.get(self.device.type, 32))
        self.prefixes = ["" if len(self.phases) == 1 else f"{p.name}_" for p in self.phases]   # of logged terms
        self.ctrl_c = CtrlC()

    # --- state -------------------------------------------------------------------------------------------
    def start_fresh(self) -> None:
        if self.dist.is_main:
            if self.checkpoints.last_path.exists():
                log.warning("%s: starting a fresh run; its checkpoints will be overwritten", self.run_dir)
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self.metrics_path.write_text("")

    def restore(self) -> None:
        """Continue from last.pt: weights, optimizers (with this config's settings), generator, counters,
        history and the best weights.  Settings the checkpoint fixes (the model, the seed) must not change."""
        last_path, best_path = self.checkpoints.last_path, self.checkpoints.best_path
        ckpt = ckpt_io.load_checkpoint(last_path, map_location=self.device)
        self.checkpoints.written = (last_path, int(ckpt["epoch"]))
        ckpt_io.check_fixed_settings(ckpt, self.model.config, self.seed, last_path)
        saved = {"precision": "fp32", "hflip": False, "lr_schedule": "constant",   # older checkpoints' values
                 **ckpt.get("train_config", {})}
        kept = ["batch_size", "hflip", "lr_schedule"]
        if self.cfg.lr_schedule != "constant":
            kept += ["epochs", "max_steps"]   # the planned length sets a schedule's rates
        for key, now in [("precision", self.precision.name), *((k, getattr(self.cfg, k)) for k in kept)]:
            if saved.get(key) != now:
                log.warning("resume: %s changed; the run will not match an uninterrupted one", key)
        self.state = TrainState.from_checkpoint(ckpt)
        if set(ckpt["optimizers"]) != set(self.optimizers):
            raise ValueError(f"resume: the checkpoint has optimizers {sorted(ckpt['optimizers'])} but the model's "
                             f"phases are {sorted(self.optimizers)}")
        self.model.load_state_dict(ckpt["model"])
        for name, opt in self.optimizers.items():
            ckpt_io.load_optimizer(name, opt, ckpt["optimizers"][name])
        self.precision.load_state_dict(ckpt.get("grad_scalers", {}))
        self.generator.set_state(ckpt["generator_state"].cpu())
        self.best_state = ckpt_io.best_weights(ckpt, last_path, best_path, repair=self.dist.is_main)
        if self.dist.is_main:
            lines = "".join(json.dumps(line) + "\n" for line in self.state.history)
            self.metrics_path.write_text(lines)
        log.info("resumed %s at epoch %d, step %d", last_path, self.state.epoch, self.state.step)

    def save(self, improved: bool) -> None:
        """Keep a snapshot of the epoch's checkpoint (the best weights too, when ``improved``), append its
        metrics line, and write the checkpoints when the cadence says so; non-finite weights are never kept."""
        try:
            check_finite(f"the model after epoch {self.state.epoch}", self.model.state_dict())
        except ValueError as exc:
            raise TrainingDiverged(f"{exc}; {self._last_good()}. Lower the learning rate or check the data.") from None
        if not self.dist.is_main:
            if improved:
                self.best_state = ckpt_io.snapshot(self.model.state_dict())
            return
        optimizers = {name: self.schedule.state_dict(name) for name in self.optimizers}
        training = ckpt_io.snapshot({   # the model part below is a copy already
            **self.state.to_checkpoint(), "optimizers": optimizers,
            "generator_state": self.generator.get_state(), "grad_scalers": self.precision.state_dict(),
            "train_config": {**dataclasses.asdict(self.cfg), "precision": self.precision.name}, "seed": self.seed})
        payload = {**ckpt_io.model_payload(self.model), **training}
        if improved:
            self.best_state = payload["model"]
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(payload["history"][-1]) + "\n")
        self.checkpoints.keep(payload, improved)

    # --- one epoch ---------------------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        n, size = len(self.train_part[0]), self.cfg.batch_size
        order = to_device(torch.randperm(n, generator=self.generator), self.device)   # one copy an epoch
        n_batches = math.ceil(n / size)
        planned = planned_batches(self.cfg, n_batches)
        show = self.cfg.progress and self.dist.is_main
        started = time.perf_counter()
        with progress_bar(show, f"epoch {self.state.epoch + 1}", n_batches) as bar:
            for b in range(n_batches):
                self.ctrl_c.check()
                if self._out_of_budget(time.perf_counter() - started, b):
                    break
                index = order[b * size:(b + 1) * size]
                if len(index) < self.dist.world:
                    continue  # a last batch too small to give every rank a row
                lo, hi = shard_bounds(len(index), self.dist.rank, self.dist.world)
                flip = (torch.rand(len(index), generator=self.generator) < 0.5)[lo:hi] if self.cfg.hflip else None
                x, y = batch_rows(self.train_part, index[lo:hi], flip)
                self.schedule.apply(self.state.step, planned)
                loss = self.step(x, y, lo, hi, len(index), self.state.epoch + b / n_batches)
                self.state.step += 1
                bar(loss)   # the loss of the first phase that ran
        self._check_health(pending=True)
        self.state.train_seconds += time.perf_counter() - started
        return self.steps.epoch_means(self.dist, self.device)

    def _out_of_budget(self, epoch_seconds: float, batch: int) -> bool:
        """max_steps reached, or max_minutes of training batches spent (rank 0's clock decides; data-parallel
        ranks ask it at the step log's cadence, ``batch`` of the epoch: a broadcast read waits for the GPU)."""
        if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
            return True
        if self.cfg.max_minutes is None or (self.dist.active and batch % self.steps.every):
            return False
        spent = self.state.train_seconds + epoch_seconds >= 60 * self.cfg.max_minutes
        return self.dist.from_main(spent, self.device)

    def step(self, x: torch.Tensor, y: torch.Tensor | None, lo: int, hi: int, n: int,
             progress: float) -> torch.Tensor:
        """The optimizer steps of the phases whose turn it is, on this rank's rows [lo, hi) of a global
        batch of n rows (a phase with repeat r runs on the last r batches of each round) -> the loss of the
        first phase that ran (a scalar tensor; every phase's loss and terms go to the step log)."""
        scale = (hi - lo) * self.dist.world / n   # 1 but for a DDP rank's uneven share (no kernel then)
        position = self.state.step % self.round
        first: torch.Tensor | None = None
        with batch_shard(lo, hi, n), checked_labels():   # device_parts checked the labels
            for i, phase in enumerate(self.phases):
                if position < self.round - phase.repeat:
                    continue
                opt = self.optimizers[phase.name]
                opt.zero_grad(set_to_none=True)
                with self.precision.autocast():
                    total, terms = self.runner(x, y, i, self.generator, progress)
                self.steps.watch(phase.name, self.prefixes[i], total, terms, hi - lo, self.state)
                self._check_health()
                self.precision.backward_step(total * scale if scale != 1 else total, opt, phase.name)
                if phase.after_step is not None:
                    phase.after_step()
                first = total if first is None else first
        return first

    def _check_health(self, pending: bool = False) -> None:
        """When the health watch is due (or for all ``pending`` steps): stop on a non-finite loss, or on a
        divergence the model names (e.g. an exploding critic); warn (or stop, with ``train.loss_growth_error``)
        when the loss grows past ``train.loss_growth_limit``.  Every rank reads at the same steps."""
        if not (pending or self.steps.due):
            return
        problem = self.steps.read(self.state, self.dist.rank)
        if self.dist.any(problem is not None, self.device):
            raise TrainingDiverged(f"{problem or 'divergence on another rank'}; {self._last_good()}. "
                                   "Lower the learning rate or check the data.")

    def _last_good(self) -> str:
        """The last checkpoint this training wrote or restored, in words (the finished epochs written first)."""
        self.checkpoints.keep_progress()
        written = self.checkpoints.last_written()
        if written is not None:
            return f"the last good checkpoint is {str(written[0])!r} (epoch {written[1]})"
        return "no checkpoint was written yet by this training"

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean validation terms over all ranks, deterministic (fixed generator per epoch); {} for models
        without a validation loss."""
        n = len(self.val_part[0])
        if n == 0:
            return {}
        self.model.eval()
        generator = make_generator(derive_seed(self.seed, "validation"))
        means = RowMeans()
        for start in range(0, n, self.cfg.batch_size):
            count = min(self.cfg.batch_size, n - start)
            lo, hi = shard_bounds(count, self.dist.rank, self.dist.world)
            if hi == lo:
                continue
            x, y = batch_rows(self.val_part, torch.arange(start + lo, start + hi, device=self.device))
            with batch_shard(lo, hi, count), checked_labels():
                out = self.model.validation_loss(Batch(x, y), generator=generator)
            if out is None:
                return {}
            means.add({"loss": out[0], **out[1]}, hi - lo)
        return means.reduce(self.dist, self.device)

    # --- epoch end ---------------------------------------------------------------------------------------
    def run_callbacks(self, epoch: int) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if self.dist.is_main:
            self.model.eval()
            for callback in self.callbacks:
                out = callback.on_epoch_end(epoch, self.model)
                if out is None:
                    continue
                if not isinstance(out, dict):
                    raise TypeError(f"callback {callback!r}: on_epoch_end must return a dict or None, got {out!r}")
                extra.update({str(k): jsonable(v) for k, v in out.items()})
        self.state.callback_stop = self.dist.from_main(bool(extra.get("stop", False)), self.device)
        return extra

    def score(self, line: dict[str, Any]) -> float | None:
        """The selection score of an epoch's line (None when this epoch has none, e.g. no monitor run)."""
        value = line.get(self.metric)
        if value is None and self.metric == "val_loss":
            value = line.get("train_loss")   # no validation split: the training loss
        return None if value is None else float(value)

    def end_epoch(self, train_terms: dict[str, float], val_terms: dict[str, float], seconds: float) -> None:
        state = self.state
        state.epoch += 1
        summary = self.model.epoch_summary()
        line: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "seconds": round(seconds, 4),
                                **{f"train_{k}": v for k, v in train_terms.items()},
                                **{f"val_{k}": v for k, v in val_terms.items()}, **self.schedule.rates(),
                                **{k: jsonable(v) for k, v in summary.items()}}
        line.update(self.run_callbacks(state.epoch))
        score = self.score(line)
        if score is not None and not math.isfinite(score):
            raise TrainingDiverged(f"non-finite {self.metric} {score} at epoch {state.epoch}, step {state.step}; "
                                   f"{self._last_good()}")
        # until a first score exists (a monitor that has not run yet), the latest weights are the best
        improved = score < state.best_score if score is not None else state.best_epoch is None or \
            not math.isfinite(state.best_score)
        if improved:
            state.best_score = score if score is not None else state.best_score
            state.best_epoch, state.bad_epochs = state.epoch, 0
        elif score is not None:
            state.bad_epochs += 1
        line[f"best_{self.metric}"] = state.best_score if math.isfinite(state.best_score) else None
        state.history.append(line)
        self.save(improved)
        shown = dict.fromkeys(("train_loss", "val_loss", self.metric, *summary))   # ordered, each key once
        log.info("epoch %d step %d: %s%s", state.epoch, state.step,
                 ", ".join(f"{k} {line[k]:.5g}" for k in shown if isinstance(line.get(k), float)),
                 " (best)" if improved else "")

    def stop_reason(self) -> str:
        """Why training stops now ('' to go on).  A budget comes before the planned epochs: one that cut the
        last epoch short is the reason, not 'completed N epochs'."""
        state, cfg = self.state, self.cfg
        if state.callback_stop:
            why = state.history[-1].get("stop_reason") if state.history else None
            return f"stopped by a callback after epoch {state.epoch}" + (f": {why}" if why else "")
        if cfg.max_steps is not None and state.step >= cfg.max_steps:
            return f"reached max_steps={cfg.max_steps}"
        if cfg.max_minutes is not None and state.train_seconds >= 60 * cfg.max_minutes:
            return f"reached max_minutes={cfg.max_minutes:g} ({state.train_seconds:.0f} s of training)"
        if state.epoch >= cfg.epochs:
            return f"completed {cfg.epochs} epochs"
        if cfg.patience is not None and state.bad_epochs >= cfg.patience:
            return f"early stopping: no improvement of {self.metric} in {state.bad_epochs} epochs"
        return ""

    def run(self) -> TrainResult:
        while not (reason := self.stop_reason()):
            started = time.perf_counter()
            train_terms = self.train_epoch()
            val_terms = self.validate()
            self.end_epoch(train_terms, val_terms, time.perf_counter() - started)
        self.checkpoints.write_unwritten()
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.dist.barrier()
        stopped_early = reason.startswith(("early stopping", "stopped by a callback"))
        log.info("training finished: %s; best %s %.5g at epoch %s", reason, self.metric, self.state.best_score,
                 self.state.best_epoch)
        return TrainResult(epochs_run=self.state.epoch, steps=self.state.step, best_score=self.state.best_score,
                           selection_metric=self.metric, stopped_early=stopped_early, reason=reason,
                           history=list(self.state.history), device=str(self.device), precision=self.precision.name,
                           best_epoch=self.state.best_epoch, checkpoint=str(self.checkpoints.best_path),
                           train_seconds=self.state.train_seconds)


def train(model: nn.Module, data: ImageDataset, cfg: TrainConfig, run_dir: str | Path, *, seed: int,
          resume: bool = False, callbacks: Sequence = ()) -> TrainResult:
    """Train ``model`` on ``data`` (split assigned) and return a :class:`TrainResult`.

    Writes ``run_dir/checkpoints/{last,best}.pt`` and ``run_dir/metrics.jsonl``.  ``resume=True``
    continues from last.pt.  ``callbacks``: objects with ``on_epoch_end(epoch, model) -> dict | None``
    (called on rank 0 after validation, model in eval mode); returned keys go into that epoch's metrics
    line and ``{'stop': True}`` ends training.  On return the model holds the best (best.pt) weights.
    Raises :class:`TrainingDiverged` on a non-finite loss, with the last good epoch written, and
    :class:`TrainingInterrupted` on Ctrl-C (the current epoch is discarded, the finished ones written).
    """
    trainer = _Trainer(model, data, cfg, Path(run_dir), seed, callbacks)
    try:
        if trainer.dist.is_main:
            remove_stale_temporaries(trainer.checkpoints.folder)   # left by a killed process's checkpoint write
        if resume:
            trainer.restore()
        else:
            trainer.start_fresh()
        with trainer.ctrl_c:
            return trainer.run()
    except KeyboardInterrupt:
        last_good = trainer._last_good()   # the finished epochs written first
        written = trainer.checkpoints.last_written()
        raise TrainingInterrupted(f"training interrupted in epoch {trainer.state.epoch + 1}; {last_good}",
                                  str(written[0]) if written else None) from None
    finally:
        trainer.checkpoints.keep_progress()   # another error: the finished epochs are written all the same
        trainer.dist.close()
