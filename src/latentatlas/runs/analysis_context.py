"""What the latent analyses share: the run's frozen model, latents and images (:class:`Context`),
and the feature extractor used to judge decoded images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from latentatlas.data.base import SPLITS, ImageDataset, to_float, to_uint8
from latentatlas.runs.session import Session, as_session
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every analysis needs: the frozen model on ``device``, how codes map to images and back (the
    model's encoder or its inverter), the latents and the images."""

    run: Run
    model: torch.nn.Module
    code_map: object                # latentatlas.latent.codes.CodeMap
    latents: dict[str, np.ndarray]
    z: torch.Tensor                 # (N, d) posterior means
    split: np.ndarray               # (N,) int8 indices into SPLITS
    images: torch.Tensor | None     # uint8 (N, C, H, W) aligned with z, or None
    dataset: ImageDataset | None
    device: torch.device | str

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split; every row when the split is empty."""
        rows = np.flatnonzero(self.split == SPLITS.index(split))
        return rows if rows.size else np.arange(self.z.shape[0])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, d) -> float images (n, C, H, W) on the CPU, batched, no gradients."""
        return self.code_map.decode(z)

    def decode_grad(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode on the model's device (for geodesics), flattened to (n, D)."""
        return self.model.decode(z.to(self.device)).reshape(z.shape[0], -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (n, C, H, W) in [0, 1] -> codes (n, d) on the CPU (posterior means, or inverted)."""
        return self.code_map.encode(x)[0]

    def float_images(self, rows: np.ndarray) -> torch.Tensor:
        if self.images is None:
            raise ValueError("this analysis needs the run's images; the dataset could not be loaded")
        return to_float(self.images[torch.as_tensor(rows, dtype=torch.long)])


def load_context(target: Run | Session, *, device: torch.device | str | None = None,
                 model: torch.nn.Module | None = None, dataset: ImageDataset | None = None,
                 need_images: bool = True) -> Context:
    """Load the model, its code map, the latents and (when ``need_images``) the dataset, checking that they
    line up.  ``model`` / ``dataset`` given here replace the run's (notebooks, tests)."""
    session = as_session(target, device=device)
    if model is not None or dataset is not None:
        session = Session(session.run, device=session.device, model=model or session._model,
                          data=dataset or session._data)
    run = session.run
    if getattr(session.model, "code_kind", "continuous") != "continuous":
        raise ValueError(f"{run.path}: the latent analyses work on code vectors, but the "
                         f"{session.config.model.family!r} model has discrete code grids")
    if getattr(session.model, "conditional", False):
        raise ValueError(f"{run.path}: the latent analyses decode codes without labels, but the "
                         f"{session.config.model.family!r} model is class-conditional; they are not available for it")
    model = session.model.requires_grad_(False)
    latents = run.load_latents()
    z = torch.from_numpy(np.asarray(latents["z_mean"], dtype=np.float32))
    split = latents.get("split", np.zeros(z.shape[0], dtype=np.int8))
    if dataset is None and need_images:
        try:
            dataset = session.data
        except (FileNotFoundError, ValueError, ImportError) as err:
            log.warning("%s: could not load the dataset (%s); image-based measures are skipped", run.path, err)
    if dataset is not None and len(dataset) != z.shape[0]:
        raise ValueError(f"dataset: expected {z.shape[0]} images to match latents.npz, got {len(dataset)}; "
                         "re-run `latentatlas encode`")
    images = dataset.images if dataset is not None else None
    return Context(run, model, session.code_map, latents, z, np.asarray(split), images, dataset, session.device)


def feature_function(run: Run, dataset: ImageDataset | None, device: torch.device | str,
                     extractor: "str | torch.nn.Module | None") -> tuple[Callable, str]:
    """A callable float images (n, C, H, W) -> features (n, f) float64, and its name.  ``extractor`` is a
    latentatlas.metrics extractor name or a torch module (default: the run's evaluate.extractor; a trained one
    is seeded with the run's ``data_seed``)."""
    from latentatlas.metrics.features import build_extractor, extract_features

    extractor = extractor if extractor is not None else run.config.evaluate.extractor
    train = dataset.part("train") if dataset is not None and dataset.split is not None else dataset
    ext = build_extractor(extractor, dataset=train, device=device, seed=run.config.data_seed)
    name = ext.name

    def features(x: torch.Tensor) -> torch.Tensor:
        return extract_features(ext, to_uint8(x), device=device)

    return features, str(name)


def save_captions(run: Run, captions: dict[str, str]) -> None:
    run.update_metrics("figures", captions)
