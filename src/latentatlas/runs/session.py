"""What the stages of one run share: its dataset, model and code map, each loaded at most once.

Stages take a :class:`Run` (and load what they need from its folder) or a :class:`Session` (and reuse
what an earlier stage already holds in memory): ``run_all`` and ``demo`` train, then hand the trained
model and the dataset to every later stage instead of reloading them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from latentatlas.config import RunConfig
from latentatlas.data.base import ImageDataset
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)


class Session:
    """A run with its objects: ``config``, ``device``, ``data`` (split assigned), ``model`` (best.pt, eval
    mode) and ``code_map`` (encoder or inversion), each loaded on first use and kept."""

    def __init__(self, run: Run, *, device: torch.device | str | None = None, data: ImageDataset | None = None,
                 model: nn.Module | None = None) -> None:
        self.run = run
        self.config: RunConfig = run.config
        self.device = torch.device(device) if device is not None else device_for(self.config)
        self._data, self._model, self._code_map = data, model, None

    @property
    def data(self) -> ImageDataset:
        if self._data is None:
            self._data = load_run_data(self.config)
        return self._data

    @property
    def model(self) -> nn.Module:
        if self._model is None:
            self._model = load_model(self.run, self.device)
        return self._model.to(self.device).eval()

    @property
    def code_map(self):
        """The run's :class:`~latentatlas.latent.codes.CodeMap`: the model's encoder, or the inverter
        fitted by the encode stage (checkpoints/inverter.pt)."""
        from latentatlas.latent.codes import CodeMap, resolve_method
        from latentatlas.latent.inversion import Inverter

        if self._code_map is None:
            method = resolve_method(self.model, self.config.codes.method)
            inverter = Inverter.load(self.run.inverter_path, self.model, self.device) if method == "inversion" \
                else None
            self._code_map = CodeMap(self.model, method, inverter, self.device)
        return self._code_map

    def set_code_map(self, code_map) -> None:
        self._code_map = code_map


def as_session(target: Run | Session | str | Path, *, device: torch.device | str | None = None) -> Session:
    """``target`` as a Session (a run folder path or Run is opened; a Session is returned as is)."""
    if isinstance(target, Session):
        return target
    run = target if isinstance(target, Run) else Run.open(target)
    return Session(run, device=device)


def load_run_data(config: RunConfig) -> ImageDataset:
    """The run's dataset with its deterministic split (drawn with ``config.data_seed``)."""
    from latentatlas.data import load_dataset

    return load_dataset(config.data, seed=config.data_seed)


def device_for(config: RunConfig) -> torch.device:
    from latentatlas.training.distributed import resolve_device

    return resolve_device(config.train.device)


def model_checkpoint(run: Run) -> Path:
    """The file of the run's chosen weights: best.pt, else last.pt."""
    path = run.weights_path
    if not path.is_file():
        raise FileNotFoundError(f"{run.path}: no checkpoint yet; run `latentatlas train` first")
    return path


def load_model(run: Run, device: torch.device | str = "cpu") -> nn.Module:
    """The run's chosen weights (best.pt, else last.pt), in eval mode on ``device``."""
    from latentatlas.training.checkpoint import load_model as load_checkpoint_model

    return load_checkpoint_model(model_checkpoint(run), map_location=device).eval()
