"""What the latent analyses share: the run's frozen model, latents and images (:class:`Context`),
and the feature extractor used to judge decoded images."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from latentatlas.data.base import SPLITS, ImageDataset, to_float, to_uint8
from latentatlas.latent.encode import decode_codes, encode_images
from latentatlas.runs.store import Run

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every analysis needs: the frozen model on ``device``, the latents and the images."""

    run: Run
    model: torch.nn.Module
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
        return decode_codes(self.model, z, device=self.device)

    def decode_grad(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable decode on the model's device (for geodesics), flattened to (n, D)."""
        return self.model.decode(z.to(self.device)).reshape(z.shape[0], -1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (n, C, H, W) in [0, 1] -> posterior means (n, d) on the CPU."""
        return encode_images(self.model, x, device=self.device)[0]

    def float_images(self, rows: np.ndarray) -> torch.Tensor:
        if self.images is None:
            raise ValueError("this analysis needs the run's images; the dataset could not be loaded")
        return to_float(self.images[torch.as_tensor(rows, dtype=torch.long)])


def load_context(run: Run, *, device: torch.device | str = "cpu", model: torch.nn.Module | None = None,
                 dataset: ImageDataset | None = None, need_images: bool = True) -> Context:
    """Load the model, the latents and (when ``need_images``) the dataset, checking that they line up."""
    if model is None:
        from latentatlas.runs.pipeline import load_model

        model = load_model(run, device)
    model = model.to(device).eval().requires_grad_(False)
    latents = run.load_latents()
    z = torch.from_numpy(np.asarray(latents["z_mean"], dtype=np.float32))
    split = latents.get("split", np.zeros(z.shape[0], dtype=np.int8))
    if dataset is None and need_images:
        from latentatlas.runs.pipeline import load_run_data

        try:
            dataset = load_run_data(run.config)
        except (FileNotFoundError, ValueError, ImportError) as err:
            log.warning("%s: could not load the dataset (%s); image-based measures are skipped", run.path, err)
    if dataset is not None and len(dataset) != z.shape[0]:
        raise ValueError(f"dataset: expected {z.shape[0]} images to match latents.npz, got {len(dataset)}; "
                         "re-run `latentatlas encode`")
    images = dataset.images if dataset is not None else None
    return Context(run, model, latents, z, np.asarray(split), images, dataset, device)


def feature_function(ctx: Context, extractor: "str | torch.nn.Module | None", seed: int) -> tuple[Callable, str]:
    """A callable float images (n, C, H, W) -> features (n, f) float64, and its name.  ``extractor`` is a
    latentatlas.metrics extractor name or a torch module (default: the run's evaluate.extractor)."""
    from latentatlas.metrics.features import build_extractor, extract_features

    extractor = extractor if extractor is not None else ctx.run.config.evaluate.extractor
    name = extractor if isinstance(extractor, str) else getattr(extractor, "name", type(extractor).__name__)
    train = ctx.dataset.part("train") if ctx.dataset is not None and ctx.dataset.split is not None else ctx.dataset
    ext = build_extractor(extractor, dataset=train, device=ctx.device, seed=seed)

    def features(x: torch.Tensor) -> torch.Tensor:
        return extract_features(ext, to_uint8(x), device=ctx.device)

    return features, str(name)


def save_captions(run: Run, captions: dict[str, str]) -> None:
    run.update_metrics("figures", captions)
