"""Training monitor: the Fréchet distance of a fixed set of decoded latent draws every N epochs.

Adversarial losses do not say when a GAN is good; this callback does.  It follows the trainer's
callback protocol: ``on_epoch_end(epoch, model) -> dict | None``; returned keys are logged and
``{"stop": True}`` stops training (after ``patience`` evaluations without a new best).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from latentatlas.data.base import ImageDataset, to_uint8
from latentatlas.metrics.features import (build_extractor, extract_features, features_to_stats, reference_stats)
from latentatlas.metrics.frechet import FrechetReference, frechet
from latentatlas.rng import make_generator

log = logging.getLogger(__name__)


class FrechetMonitor:
    """Every ``every`` epochs: decode ``n`` fixed latent draws (standard normal, from ``seed``), extract
    features and report ``monitor_frechet`` against ``reference``.

    reference: an ImageDataset (statistics computed and cached with ``extractor``) or (mu, sigma)
    computed with that same extractor.  extractor: a name or module; the ``classifier`` is trained on
    ``train`` (or on the reference images).  ``epoch`` is the number of completed epochs
    (1 after the first, as the trainer passes it): the monitor runs when ``epoch % every == 0``.  ``patience``: evaluations without improvement before ``stop``.
    """

    def __init__(self, reference: ImageDataset | Any, *, every: int = 1, n: int = 1000,
                 latent_dim: int | None = None, seed: int = 0, patience: int | None = None,
                 extractor: str | nn.Module = "classifier", train: ImageDataset | None = None,
                 device: str = "cpu", batch_size: int = 256, min_delta: float = 0.0) -> None:
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a positive int, got {every!r}")
        if not isinstance(n, int) or n < 2:
            raise ValueError(f"n: expected an int >= 2, got {n!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience: expected None or a positive int, got {patience!r}")
        self.every, self.n, self.latent_dim, self.seed = every, n, latent_dim, seed
        self.patience, self.min_delta = patience, min_delta
        self.device, self.batch_size = device, batch_size
        fit_on = train if train is not None else (reference if isinstance(reference, ImageDataset) else None)
        self.extractor = build_extractor(extractor, dataset=fit_on, device=device, seed=seed)
        if isinstance(reference, ImageDataset):
            reference = reference_stats(reference, self.extractor, split="monitor", batch_size=batch_size,
                                        device=device).stats
        self.reference = FrechetReference(reference)
        self._z: torch.Tensor | None = None
        self.history: list[tuple[int, float]] = []
        self.best = float("inf")
        self._since_best = 0

    def latents(self, latent_dim: int) -> torch.Tensor:
        """The fixed draws (n, latent_dim), made once from ``seed``."""
        if self._z is None or self._z.shape[1] != latent_dim:
            self._z = torch.randn(self.n, latent_dim, generator=make_generator(self.seed))
        return self._z

    @torch.no_grad()
    def score(self, model: nn.Module) -> float:
        """Fréchet distance of ``model.decode`` of the fixed draws against the reference."""
        dim = self.latent_dim or getattr(model, "latent_dim", None)
        if not dim:
            raise ValueError("latent_dim: not given and the model has no latent_dim attribute")
        was_training = model.training
        model.eval()
        try:
            parts = []
            for z in torch.split(self.latents(int(dim)), self.batch_size):
                x = model.decode(z.to(self.device))
                parts.append(to_uint8(x))
        finally:
            model.train(was_training)
        feats = extract_features(self.extractor, torch.cat(parts), batch_size=self.batch_size, device=self.device)
        return frechet(self.reference, features_to_stats(feats))

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        if epoch % self.every:
            return None
        value = self.score(model)
        self.history.append((epoch, value))
        if value < self.best - self.min_delta:
            self.best, self._since_best = value, 0
        else:
            self._since_best += 1
        out: dict[str, Any] = {"monitor_frechet": value, "monitor_frechet_best": self.best}
        log.info("epoch %d: monitor Fréchet distance %.4f (best %.4f)", epoch, value, self.best)
        if self.patience is not None and self._since_best >= self.patience:
            log.info("monitor: no improvement in %d evaluations, stopping", self.patience)
            out["stop"] = True
        return out
