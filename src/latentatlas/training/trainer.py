"""One training loop for every family: each batch steps the model's phases in turn (Adam per phase).

Run folder: ``checkpoints/last.pt`` after every epoch, ``checkpoints/best.pt`` when the validation loss
improves (the run's chosen weights), and ``metrics.jsonl`` with one line per epoch::

    {"epoch": 1, "step": 40, "seconds": 2.1, "train_loss": ..., "train_recon": ..., "val_loss": ...,
     "val_recon": ..., "best_val_loss": ..., <keys returned by callbacks>}

Epochs are counted from 1 (``epoch`` = epochs completed).  Shuffling and reparameterisation noise come
from one CPU generator seeded with ``seed`` and saved in every checkpoint, so ``resume=True`` continues a
killed run to the same weights as an uninterrupted one.  The validation loss is the model's ``loss`` with
warm-ups finished (``progress=inf``) and noise from a generator re-seeded every epoch, so it is
deterministic.  Under ``torchrun`` the run is data-parallel (see :mod:`latentatlas.training.distributed`).
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
from latentatlas.data.base import ImageDataset, to_float
from latentatlas.models.base import batch_shard
from latentatlas.rng import derive_seed, make_generator
from latentatlas.training import checkpoint as ckpt_io
from latentatlas.training.distributed import setup as setup_distributed
from latentatlas.training.distributed import shard_bounds
from latentatlas.training.progress import epoch_progress
from latentatlas.training.state import TrainingDiverged, TrainResult, TrainState, check_train_config, jsonable

log = logging.getLogger(__name__)

__all__ = ["train", "resolve_device", "TrainResult", "TrainingDiverged"]


def resolve_device(name: str) -> torch.device:
    """'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:N' or 'mps' -> torch.device."""
    if not isinstance(name, str):
        raise TypeError(f"device: expected a string like 'auto', 'cpu' or 'cuda:0', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device: {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device: 'mps' requested but MPS is not available; use 'cpu' or 'auto'")
    return device


class _PhaseRunner(nn.Module):
    """Routes ``forward(x, i, ...)`` to phase i's loss so that DDP sees every training forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.phase_list = model.phases()

    def forward(self, x: torch.Tensor, index: int, generator: torch.Generator, progress: float):
        return self.phase_list[index].loss(x, generator=generator, progress=progress)


class _Trainer:
    def __init__(self, model: nn.Module, data: ImageDataset, cfg: TrainConfig, run_dir: Path, seed: int,
                 callbacks: Sequence) -> None:
        check_train_config(cfg)
        self.cfg, self.seed, self.callbacks = cfg, int(seed), list(callbacks)
        self.dist, self.device = setup_distributed(resolve_device(cfg.device))
        self.model = model.to(self.device)
        self.train_images, self.val_images = _parts(data, model, self.device)
        self.phases = model.phases()
        self.optimizers = {p.name: torch.optim.Adam(p.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                           for p in self.phases}
        runner = _PhaseRunner(model)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            runner = DistributedDataParallel(runner, device_ids=[self.device.index] if self.device.type == "cuda"
                                             else None, find_unused_parameters=len(self.phases) > 1)
        self.runner = runner
        self.generator = make_generator(self.seed)
        self.state = TrainState()
        self.best_state: dict[str, torch.Tensor] | None = None
        self.run_dir = Path(run_dir)
        self.last_path = self.run_dir / "checkpoints" / "last.pt"
        self.best_path = self.run_dir / "checkpoints" / "best.pt"
        self.metrics_path = self.run_dir / "metrics.jsonl"

    # --- state -------------------------------------------------------------------------------------------
    def start_fresh(self) -> None:
        if self.dist.is_main:
            if self.last_path.exists():
                log.warning("%s: starting a fresh run; its checkpoints will be overwritten", self.run_dir)
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            self.metrics_path.write_text("")

    def restore(self) -> None:
        """Continue from last.pt: weights, optimizers, generator, counters and history."""
        ckpt = ckpt_io.load_checkpoint(self.last_path, map_location=self.device)
        if ckpt["model_config"] != dataclasses.asdict(self.model.config):
            raise ValueError(f"resume: the model config differs from the one in {str(self.last_path)!r}: "
                             f"{ckpt['model_config']} vs {dataclasses.asdict(self.model.config)}")
        if ckpt.get("train_config", {}).get("batch_size") != self.cfg.batch_size:
            log.warning("resume: batch_size changed; the run will not match an uninterrupted one")
        self.state = TrainState.from_checkpoint(ckpt)
        if set(ckpt["optimizers"]) != set(self.optimizers):
            raise ValueError(f"resume: the checkpoint has optimizers {sorted(ckpt['optimizers'])} but the model's "
                             f"phases are {sorted(self.optimizers)}")
        self.model.load_state_dict(ckpt["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        self.generator.set_state(ckpt["generator_state"].cpu())
        if self.best_path.is_file():
            self.best_state = ckpt_io.load_checkpoint(self.best_path)["model"]
        if self.dist.is_main:
            lines = "".join(json.dumps(line) + "\n" for line in self.state.history)
            self.metrics_path.write_text(lines)
        log.info("resumed %s at epoch %d, step %d", self.last_path, self.state.epoch, self.state.step)

    def save(self, improved: bool) -> None:
        if not self.dist.is_main:
            return
        payload = ckpt_io.model_payload(self.model)
        payload.update(self.state.to_checkpoint())
        payload["optimizers"] = {name: opt.state_dict() for name, opt in self.optimizers.items()}
        payload["generator_state"] = self.generator.get_state()
        payload["train_config"] = dataclasses.asdict(self.cfg)
        ckpt_io.save_checkpoint(self.last_path, payload)
        if improved:
            ckpt_io.save_checkpoint(self.best_path, payload)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(self.state.history[-1]) + "\n")

    # --- one epoch ---------------------------------------------------------------------------------------
    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        n, size = len(self.train_images), self.cfg.batch_size
        order = torch.randperm(n, generator=self.generator)
        n_batches = math.ceil(n / size)
        sums: dict[str, torch.Tensor] = {}
        rows = 0
        show = self.cfg.progress and self.dist.is_main
        with epoch_progress(show, self.state.epoch + 1, n_batches) as bar:
            for b in range(n_batches):
                if self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps:
                    break
                index = order[b * size:(b + 1) * size]
                if len(index) < self.dist.world:
                    continue  # a last batch too small to give every rank a row
                lo, hi = shard_bounds(len(index), self.dist.rank, self.dist.world)
                x = to_float(self.train_images[index[lo:hi].to(self.device)])
                terms = self.step(x, lo, hi, len(index), self.state.epoch + b / n_batches)
                self.state.step += 1
                rows += hi - lo
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().float() * (hi - lo)
                bar(next(iter(terms.values())))  # the (first phase's) loss
        return self._reduce(sums, rows)

    def step(self, x: torch.Tensor, lo: int, hi: int, n: int, progress: float) -> dict[str, torch.Tensor]:
        """One optimizer step per phase on this rank's rows [lo, hi) of a global batch of n rows."""
        scale = (hi - lo) * self.dist.world / n
        out: dict[str, torch.Tensor] = {}
        with batch_shard(lo, hi, n):
            for i, phase in enumerate(self.phases):
                opt = self.optimizers[phase.name]
                opt.zero_grad(set_to_none=True)
                total, terms = self.runner(x, i, self.generator, progress)
                self._check_finite(total, phase.name)
                (total * scale).backward()
                opt.step()
                prefix = "" if len(self.phases) == 1 else f"{phase.name}_"
                out[prefix + "loss"] = total.detach()
                out.update({prefix + k: v for k, v in terms.items()})
        return out

    def _check_finite(self, total: torch.Tensor, phase: str) -> None:
        bad = self.dist.any(not bool(torch.isfinite(total.detach()).all()), self.device)
        if bad:
            raise TrainingDiverged(
                f"non-finite {phase} loss ({float(total.detach()):.4g} on rank {self.dist.rank}) at epoch "
                f"{self.state.epoch + 1}, step {self.state.step + 1}; the last good checkpoint is "
                f"{str(self.last_path)!r} (epoch {self.state.epoch}). Lower train.lr or check the data.")

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean validation terms over all ranks, deterministic (fixed generator per epoch)."""
        n = len(self.val_images)
        if n == 0:
            return {}
        self.model.eval()
        generator = make_generator(derive_seed(self.seed, "validation"))
        sums: dict[str, torch.Tensor] = {}
        rows = 0
        for start in range(0, n, self.cfg.batch_size):
            count = min(self.cfg.batch_size, n - start)
            lo, hi = shard_bounds(count, self.dist.rank, self.dist.world)
            if hi == lo:
                continue
            x = to_float(self.val_images[start + lo:start + hi])
            with batch_shard(lo, hi, count):
                total, terms = self.model.loss(x, generator=generator, progress=math.inf)
            rows += hi - lo
            for key, value in {"loss": total, **terms}.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * (hi - lo)
        return self._reduce(sums, rows)

    def _reduce(self, sums: dict[str, torch.Tensor], rows: int) -> dict[str, float]:
        keys = sorted(sums)
        packed = torch.stack([torch.as_tensor(sums[k], device=self.device).float() for k in keys]
                             + [torch.tensor(float(rows), device=self.device)])
        packed = self.dist.sum(packed)
        total_rows = float(packed[-1])
        return {k: float(packed[i]) / total_rows for i, k in enumerate(keys)} if total_rows else {}

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

    def end_epoch(self, train_terms: dict[str, float], val_terms: dict[str, float], seconds: float) -> None:
        state = self.state
        state.epoch += 1
        score = val_terms.get("loss", train_terms.get("loss", math.nan))
        if not math.isfinite(score):
            raise TrainingDiverged(f"non-finite validation loss {score} at epoch {state.epoch}, step {state.step}; "
                                   f"the last good checkpoint is {str(self.last_path)!r}")
        improved = score < state.best_val_loss
        if improved:
            state.best_val_loss, state.best_epoch, state.bad_epochs = score, state.epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        else:
            state.bad_epochs += 1
        line = {"epoch": state.epoch, "step": state.step, "seconds": round(seconds, 4),
                **{f"train_{k}": v for k, v in train_terms.items()}, **{f"val_{k}": v for k, v in val_terms.items()},
                "best_val_loss": state.best_val_loss}
        line.update(self.run_callbacks(state.epoch))
        state.history.append(line)
        self.save(improved)
        log.info("epoch %d step %d: train loss %.5g, val loss %.5g%s", state.epoch, state.step,
                 train_terms.get("loss", math.nan), val_terms.get("loss", math.nan), " (best)" if improved else "")

    def stop_reason(self) -> str:
        state, cfg = self.state, self.cfg
        if state.callback_stop:
            return f"stopped by a callback after epoch {state.epoch}"
        if state.epoch >= cfg.epochs:
            return f"completed {cfg.epochs} epochs"
        if cfg.patience is not None and state.bad_epochs >= cfg.patience:
            return f"early stopping: no validation improvement in {state.bad_epochs} epochs"
        if cfg.max_steps is not None and state.step >= cfg.max_steps:
            return f"reached max_steps={cfg.max_steps}"
        return ""

    def run(self) -> TrainResult:
        while not (reason := self.stop_reason()):
            started = time.perf_counter()
            train_terms = self.train_epoch()
            val_terms = self.validate()
            self.end_epoch(train_terms, val_terms, time.perf_counter() - started)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        self.dist.barrier()
        stopped_early = reason.startswith(("early stopping", "stopped by a callback"))
        log.info("training finished: %s; best val loss %.5g at epoch %s", reason, self.state.best_val_loss,
                 self.state.best_epoch)
        return TrainResult(epochs_run=self.state.epoch, steps=self.state.step,
                           best_val_loss=self.state.best_val_loss, stopped_early=stopped_early, reason=reason,
                           history=list(self.state.history), device=str(self.device),
                           best_epoch=self.state.best_epoch, checkpoint=str(self.best_path))


def _parts(data: ImageDataset, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 train and val images on ``device``, after checking the dataset against the model."""
    if not isinstance(data, ImageDataset):
        raise TypeError(f"data: expected an ImageDataset, got {type(data).__name__}")
    if data.split is None:
        raise ValueError(f"data: {data.name} has no split assigned; call assign_split first")
    if tuple(data.image_shape) != tuple(model.image_shape):
        raise ValueError(f"data: image shape {tuple(data.image_shape)} does not match the model's "
                         f"{tuple(model.image_shape)}")
    train, val = data.part("train").images, data.part("val").images
    if len(train) == 0:
        raise ValueError(f"data: {data.name} has no training rows")
    if len(val) == 0:
        log.warning("data: no validation rows; model selection and early stopping use the training loss")
    return train.to(device), val.to(device)


def train(model: nn.Module, data: ImageDataset, cfg: TrainConfig, run_dir: str | Path, *, seed: int,
          resume: bool = False, callbacks: Sequence = ()) -> TrainResult:
    """Train ``model`` on ``data`` (split assigned) and return a :class:`TrainResult`.

    Writes ``run_dir/checkpoints/{last,best}.pt`` and ``run_dir/metrics.jsonl``.  ``resume=True``
    continues from last.pt.  ``callbacks``: objects with ``on_epoch_end(epoch, model) -> dict | None``
    (called on rank 0 after validation, model in eval mode); returned keys go into that epoch's metrics
    line and ``{'stop': True}`` ends training.  On return the model holds the best (best.pt) weights.
    Raises :class:`TrainingDiverged` on a non-finite loss, leaving the last good checkpoint in place.
    """
    trainer = _Trainer(model, data, cfg, Path(run_dir), seed, callbacks)
    try:
        if resume:
            trainer.restore()
        else:
            trainer.start_fresh()
        return trainer.run()
    finally:
        trainer.dist.close()
