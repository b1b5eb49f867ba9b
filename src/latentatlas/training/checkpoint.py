"""Self-describing checkpoints, written atomically and read with ``torch.load(..., weights_only=True)``.

A checkpoint (format 2) is a plain dict of tensors, numbers, strings, lists and dicts:

``format`` (2), ``model`` (state dict), ``model_config`` (the fields of the family's config dataclass),
``image_shape`` ([C, H, W]), ``n_classes`` (int or None), and for training checkpoints also ``optimizers``
({phase: state dict}, with the configured learning rates, not those a ``train.lr_schedule`` set last),
``epoch`` (epochs completed), ``step`` (optimizer steps, counting batches), ``best_score``,
``best_epoch``, ``bad_epochs``, ``generator_state`` (uint8 tensor), ``train_config`` (dict),
``history`` (one dict per epoch, the lines of metrics.jsonl), ``callback_stop`` (bool) and ``grad_scalers``
({phase: GradScaler state}, empty unless ``train.precision`` is fp16).
Format 1 (AE/VAE only, one shared ModelConfig with an ``options`` dict) is read and migrated.
The functions at the end are what a resumed training takes from a checkpoint and what it refuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from latentatlas.fileio import file_identity, publish_copy, torch_load, torch_save
from latentatlas.optim import load_adam_state
from latentatlas.validate import check_finite

log = logging.getLogger(__name__)

FORMAT = 2
READABLE = (1, 2)
REQUIRED = ("format", "model", "model_config", "image_shape")


def model_payload(model: nn.Module) -> dict[str, Any]:
    """The model part of a checkpoint: format, state dict (a copy on the CPU: :func:`snapshot`), config and
    image shape."""
    for attr in ("config", "image_shape"):
        if not hasattr(model, attr):
            raise TypeError(f"model: expected a latentatlas model with .{attr}, got {type(model).__name__}")
    return {"format": FORMAT, "model": snapshot(model.state_dict()), "model_config": dataclasses.asdict(model.config),
            "image_shape": [int(v) for v in model.image_shape], "n_classes": getattr(model, "n_classes", None)}


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    missing = [k for k in REQUIRED if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint: missing key(s) {missing}; build it from model_payload(model)")
    return torch_save(checkpoint, path)


def save_model(path: str | Path, model: nn.Module) -> Path:
    """Save only the model (no training state) in a checkpoint that :func:`load_model` reads."""
    return save_checkpoint(path, model_payload(model))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (weights_only, content hash verified).  FileNotFoundError if absent, ValueError
    if unreadable, damaged, foreign or holding non-finite weights."""
    ckpt = torch_load(path, "checkpoint", map_location=map_location)
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED) or not isinstance(ckpt["model"], dict):
        raise ValueError(f"checkpoint: {str(path)!r} is not a latentatlas checkpoint (expected keys {list(REQUIRED)})")
    check_finite(f"checkpoint {str(path)!r} (model weights)", ckpt["model"])
    if ckpt["format"] not in READABLE:
        raise ValueError(f"checkpoint: {str(path)!r} has format {ckpt['format']!r}; this version reads {READABLE}")
    if ckpt["format"] == 1:
        from latentatlas.config import migrate_model_values

        ckpt["model_config"] = migrate_model_values(ckpt["model_config"])
    return ckpt


def saved_model_config(ckpt: dict[str, Any]) -> Any:
    """The model config a checkpoint's weights were made with.  A field added since it was written takes the
    value that rebuilds its network: ``decoder_output`` 'conv3x3' for a conv autoencoder (the only decoder
    before the field existed)."""
    from latentatlas.config import model_config_from_dict

    values = ckpt["model_config"]
    cfg = model_config_from_dict(values, "checkpoint model_config")
    if hasattr(cfg, "decoder_output") and "decoder_output" not in values and cfg.architecture == "conv":
        cfg = dataclasses.replace(cfg, decoder_output="conv3x3")
    return cfg


def model_from_checkpoint(ckpt: dict[str, Any]) -> nn.Module:
    """Rebuild the model of a loaded checkpoint dict (via ``build_model``) and load its weights; eval mode."""
    from latentatlas.models import build_model

    try:
        cfg = saved_model_config(ckpt)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint: its model_config cannot be read by this version: {exc}") from exc
    model = build_model(cfg, tuple(ckpt["image_shape"]), ckpt.get("n_classes"))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from a checkpoint file, weights loaded, in eval mode, on ``map_location``."""
    model = model_from_checkpoint(load_checkpoint(path, map_location))
    return model.to(map_location)


# -- what an epoch end writes, and when -----------------------------------------------------------------
def snapshot(obj: Any) -> Any:
    """A copy of ``obj`` (nested dicts, lists and tuples of tensors and scalars) that later training steps
    cannot change: every tensor is copied to the CPU, into new storage also when it is there already."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {key: snapshot(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(value) for value in obj)
    return obj


class WriteCadence:
    """When an epoch end writes its checkpoint.  With ``overhead`` (a share of the time, e.g. 0.02): once the
    time since the last write ended is at least that write's seconds / ``overhead``, so that writes take at
    most that share of the time however short the epochs (a 60 ms write on a GPU that trains an epoch in
    0.6 s waits for 3 s of training); the first write is always due.  ``None``: every epoch.  ``clock``
    gives seconds (a fake one in tests)."""

    def __init__(self, overhead: float | None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.overhead, self.clock = overhead, clock
        self._ended: float | None = None
        self._seconds = 0.0

    def due(self) -> bool:
        if self.overhead is None or self._ended is None:
            return True
        return (self.clock() - self._ended) * self.overhead >= self._seconds

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Around a write: its seconds and end decide when the next one is due (a failed write counts none)."""
        started = self.clock()
        yield
        self._ended = self.clock()
        self._seconds = self._ended - started


class TrainingCheckpoints:
    """last.pt and best.pt of one training, in ``folder``.  :meth:`keep` takes each epoch's checkpoint and
    writes the files when the :class:`WriteCadence` of ``overhead`` says so (until then the checkpoints stay
    in memory); :meth:`write_unwritten` writes what the files lack (at the end of the training), and
    :meth:`keep_progress` does so on the way out of an error or an interrupt."""

    def __init__(self, folder: Path, overhead: float | None) -> None:
        self.folder = Path(folder)
        self.last_path, self.best_path = self.folder / "last.pt", self.folder / "best.pt"
        self.cadence = WriteCadence(overhead)
        self.written: tuple[Path, int] | None = None   # the last checkpoint this training wrote or restored
        self._latest: dict[str, Any] | None = None     # the latest epoch's checkpoint while last.pt lacks it
        self._best: dict[str, Any] | None = None       # the best epoch's while best.pt lacks it
        self._writing = False                          # a write in progress, or one that failed

    def keep(self, payload: dict[str, Any], improved: bool) -> None:
        """Take an epoch's checkpoint (owned: a :func:`snapshot`), the best so far when ``improved``."""
        self._latest = payload
        if improved:
            self._best = payload
        if self.cadence.due():
            self.write_unwritten()

    def write_unwritten(self) -> None:
        """Write what the files lack: best.pt first when the best epoch is older than the latest, then last.pt
        (and best.pt as a hard link to it when the latest epoch is the best)."""
        latest, best = self._latest, self._best
        if latest is None:
            return
        self._writing = True
        with self.cadence.timing():
            if best is not None and best is not latest:
                save_checkpoint(self.best_path, best)
            published = file_identity(self.last_path)
            try:
                save_checkpoint(self.last_path, latest)
            finally:   # an interrupt can land after the rename (in the fsync): the new file is then in place
                if file_identity(self.last_path) != published:
                    self.written = (self.last_path, int(latest["epoch"]))
            if best is latest:
                publish_copy(self.last_path, self.best_path)   # the same file: no second write
        self._latest = self._best = None
        self._writing = False

    def keep_progress(self) -> None:
        """Write the finished epochs the files lack, unless the error on its way came from a write; a failure
        here is logged, not raised (the error on its way is the one to report)."""
        if self._latest is None or self._writing:
            return
        try:
            self.write_unwritten()
        except Exception as exc:   # noqa: BLE001
            log.warning("could not write the checkpoint of epoch %s: %s: %s", self._latest["epoch"],
                        type(exc).__name__, exc)

    def last_written(self) -> tuple[Path, int] | None:
        """(path, epoch) of the last checkpoint this training wrote or restored, if it is still there."""
        return self.written if self.written is not None and self.written[0].is_file() else None


# -- resuming -------------------------------------------------------------------------------------------
# What a resumed training takes from its checkpoint, and what it refuses: the settings the checkpoint fixes
# (model, seed) must be unchanged, the optimizers keep this config's settings (a changed ``train.lr`` is
# used, not only recorded), and the best weights come from whichever file holds them after an
# interruption between the writes of last.pt and best.pt.
def check_fixed_settings(ckpt: dict[str, Any], model_config: Any, seed: int, path: Path) -> None:
    """Refuse a resume whose model config or seed differs from the checkpoint's: the weights and the
    generator state come from the checkpoint, so new values would be recorded but not used."""
    from latentatlas.config import diff as config_diff

    saved = saved_model_config(ckpt)
    changes = [(f"model.{k}", a, b) for k, a, b in config_diff(dataclasses.asdict(saved),
                                                                dataclasses.asdict(model_config))]
    if "seed" in ckpt and int(ckpt["seed"]) != int(seed):
        changes.append(("seed", int(ckpt["seed"]), int(seed)))
    if changes:
        keep = " ".join(f"--set {k}={_yaml_scalar(a)}" for k, a, _ in changes if a is not None)
        raise ValueError(f"resume: the model and the seed cannot change on resume; {str(path)!r} was made with "
                         "other values: " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)
                         + f"; keep them{f' ({keep})' if keep else ''}, or start a new run under another name")


def _yaml_scalar(value: Any) -> str:
    """``value`` as a ``--set`` value reads it back (YAML flow style, one line)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()


def load_optimizer(name: str, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore an optimizer's state but keep the settings (lr, betas, weight decay) it was built with from
    this config."""
    wanted = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    load_adam_state(opt, state)
    for group, settings in zip(opt.param_groups, wanted):
        changed = [f"{k} {group.get(k)!r} -> {v!r}" for k, v in settings.items()
                   if k in ("lr", "betas", "weight_decay", "eps") and group.get(k) != v]
        if changed:
            log.info("resume: %s optimizer %s (from the config)", name, ", ".join(changed))
        group.update(settings)


def best_weights(ckpt: dict[str, Any], last_path: Path, best_path: Path, *,
                 repair: bool) -> dict[str, torch.Tensor] | None:
    """The best weights so far of the training saved in ``ckpt`` (read from ``last_path``).  When last.pt's own
    epoch was the best, its weights (and best.pt made a copy of last.pt, with ``repair``, if an interruption
    left it behind); otherwise best.pt's."""
    epoch, best_epoch = int(ckpt["epoch"]), ckpt.get("best_epoch")
    if best_epoch is not None and int(best_epoch) == epoch:
        on_disk = load_checkpoint(best_path) if best_path.is_file() else {}
        if on_disk.get("epoch") != epoch and repair:
            log.info("resume: %s was not written for epoch %d (interrupted); rewriting it", best_path, epoch)
            publish_copy(last_path, best_path)
        return {k: v.detach().cpu().clone() for k, v in ckpt["model"].items()}
    if not best_path.is_file():
        return None
    best = load_checkpoint(best_path)
    if best.get("epoch") != best_epoch:
        log.warning("resume: %s holds epoch %s but the run's best epoch is %s", best_path, best.get("epoch"),
                    best_epoch)
    return best["model"]
