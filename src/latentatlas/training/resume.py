"""What a resumed training takes from its checkpoint, and what it refuses: the settings the checkpoint
fixes (model, seed) must be unchanged, the optimizers keep this config's settings (a changed ``train.lr``
is used, not only recorded), and the best weights come from whichever file holds them after an
interruption between the writes of last.pt and best.pt."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from latentatlas.config import ModelConfig, model_config_from_dict
from latentatlas.config import diff as config_diff
from latentatlas.training import checkpoint as ckpt_io

log = logging.getLogger(__name__)


def check_fixed_settings(ckpt: dict[str, Any], model_config: ModelConfig, seed: int, path: Path) -> None:
    """Refuse a resume whose model config or seed differs from the checkpoint's: the weights and the
    generator state come from the checkpoint, so new values would be recorded but not used."""
    saved = model_config_from_dict(ckpt["model_config"], "checkpoint model_config")
    changes = [(f"model.{k}", a, b) for k, a, b in config_diff(dataclasses.asdict(saved),
                                                                dataclasses.asdict(model_config))]
    if "seed" in ckpt and int(ckpt["seed"]) != int(seed):
        changes.append(("seed", int(ckpt["seed"]), int(seed)))
    if changes:
        raise ValueError(f"resume: the model and the seed cannot change on resume; {str(path)!r} was made with "
                         "other values: " + ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changes)
                         + "; keep them, or start a new run under another name")


def load_optimizer(name: str, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore an optimizer's state but keep the settings (lr, betas, weight decay) it was built with from
    this config."""
    wanted = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
    opt.load_state_dict(state)
    for group, settings in zip(opt.param_groups, wanted):
        changed = [f"{k} {group.get(k)!r} -> {v!r}" for k, v in settings.items()
                   if k in ("lr", "betas", "weight_decay", "eps") and group.get(k) != v]
        if changed:
            log.info("resume: %s optimizer %s (from the config)", name, ", ".join(changed))
        group.update(settings)


def best_weights(ckpt: dict[str, Any], best_path: Path, *, repair: bool) -> dict[str, torch.Tensor] | None:
    """The best weights so far of the training saved in ``ckpt`` (last.pt).  When last.pt's own epoch was
    the best, its weights (and best.pt is rewritten from it, with ``repair``, if an interruption left it
    behind); otherwise best.pt's."""
    epoch, best_epoch = int(ckpt["epoch"]), ckpt.get("best_epoch")
    if best_epoch is not None and int(best_epoch) == epoch:
        on_disk = ckpt_io.load_checkpoint(best_path) if best_path.is_file() else {}
        if on_disk.get("epoch") != epoch and repair:
            log.info("resume: %s was not written for epoch %d (interrupted); rewriting it", best_path, epoch)
            ckpt_io.save_checkpoint(best_path, ckpt)
        return {k: v.detach().cpu().clone() for k, v in ckpt["model"].items()}
    if not best_path.is_file():
        return None
    best = ckpt_io.load_checkpoint(best_path)
    if best.get("epoch") != best_epoch:
        log.warning("resume: %s holds epoch %s but the run's best epoch is %s", best_path, best.get("epoch"),
                    best_epoch)
    return best["model"]
