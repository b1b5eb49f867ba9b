"""Training monitor: the quality of a fixed set of decoded prior draws every N epochs.

Adversarial losses do not say when a GAN is good, nor when it collapses; this callback does.  Each
evaluation logs the Fréchet distance against a reference split (``monitor_frechet``, the score that picks
a GAN's best.pt), precision and recall against the reference features, and, when the extractor classifies
(the dataset classifier), the class coverage of the samples; a :class:`~latentatlas.metrics.modes.CollapseDetector`
names the symptom (``monitor_collapse`` and a warning) when samples drop classes or recall falls.  It
follows the trainer's callback protocol: ``on_epoch_end(epoch, model) -> dict | None``; ``{"stop": True}``
stops training (after ``patience`` evaluations without a new best Fréchet distance).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from latentatlas.data.base import ImageDataset, to_uint8
from latentatlas.latent.codes import decode_codes
from latentatlas.metrics.features import build_extractor, extract_features, features_to_stats, reference_stats
from latentatlas.metrics.frechet import FrechetReference, frechet
from latentatlas.metrics.modes import CollapseDetector, class_coverage
from latentatlas.metrics.prdc import PRDCReference
from latentatlas.rng import make_generator
from latentatlas.validate import check_number

log = logging.getLogger(__name__)

K_MONITOR = 3   # neighbours for the monitor's precision and recall


class SampleMonitor:
    """Every ``every`` epochs: decode ``n`` fixed prior draws (``model.prior_sample`` with a generator
    seeded by ``seed``, standard normal for a bare decoder; labels cycling through the classes for a
    conditional model), extract features and score them against ``reference``.

    reference: an ImageDataset (statistics and features computed and cached with ``extractor``) or
    (mu, sigma) computed with that same extractor (then only the Fréchet distance).  extractor: a name or
    module; the ``classifier`` is trained on ``train`` (or on the reference images), and its logits give
    the class coverage against the class distribution of ``train`` (or the reference).  ``epoch`` is the
    number of completed epochs (1 after the first): the monitor runs when ``epoch % every == 0``.
    ``patience``: evaluations without a new best Fréchet distance before ``stop``.
    """

    def __init__(self, reference: ImageDataset | Any, *, every: int = 1, n: int = 1000,
                 latent_dim: int | None = None, seed: int = 0, patience: int | None = None,
                 extractor: str | nn.Module = "classifier", train: ImageDataset | None = None,
                 device: str = "cpu", batch_size: int = 256, min_delta: float = 0.0,
                 detector: CollapseDetector | None = None) -> None:
        check_number("train.monitor_every", every, low=1, integer=True)
        check_number("train.monitor_n", n, low=2, integer=True)
        check_number("train.monitor_patience", patience, low=1, integer=True, optional=True)
        self.every, self.n, self.latent_dim, self.seed = every, n, latent_dim, seed
        self.patience, self.min_delta = patience, min_delta
        self.device, self.batch_size = device, batch_size
        fit_on = train if train is not None else (reference if isinstance(reference, ImageDataset) else None)
        self.extractor = build_extractor(extractor, dataset=fit_on, device=device, seed=seed)
        self.prdc: PRDCReference | None = None
        if isinstance(reference, ImageDataset):
            ref = reference_stats(reference, self.extractor, split="monitor", batch_size=batch_size, device=device)
            reference = ref.stats
            if ref.features is not None and ref.features.shape[0] > K_MONITOR:
                self.prdc = PRDCReference.build(ref.features, K_MONITOR, k_dc=K_MONITOR)
        self.reference = FrechetReference(reference)
        self.class_probs = _class_probs(fit_on) if hasattr(self.extractor, "features_and_logits") else None
        self.detector = detector or CollapseDetector()
        self._draws: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.history: list[tuple[int, float]] = []
        self.best = float("inf")
        self._since_best = 0

    def draws(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fixed codes (n, d) and labels (n,) or None, made once from ``seed`` on the CPU."""
        if self._draws is None:
            g = make_generator(self.seed)
            if hasattr(model, "prior_sample"):
                z = model.prior_sample(self.n, generator=g).cpu()
            else:
                dim = self.latent_dim or getattr(model, "latent_dim", None)
                if not dim:
                    raise ValueError("latent_dim: not given and the model has no latent_dim attribute")
                z = torch.randn(self.n, int(dim), generator=g)
            y = torch.arange(self.n) % model.n_classes if getattr(model, "conditional", False) else None
            self._draws = (z, y)
        return self._draws

    @torch.no_grad()
    def images(self, model: nn.Module) -> torch.Tensor:
        """uint8 (n, C, H, W): the decoded fixed draws."""
        z, y = self.draws(model)
        was_training = model.training
        try:
            return to_uint8(decode_codes(model, z, y, batch_size=self.batch_size, device=self.device))
        finally:
            model.train(was_training)

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        """monitor_frechet, and where available monitor_precision / _recall / _classes_covered / _class_kl."""
        images = self.images(model)
        want_logits = self.class_probs is not None
        out = extract_features(self.extractor, images, batch_size=self.batch_size, device=self.device,
                               logits=want_logits)
        feats, logits = out if want_logits else (out, None)
        scores: dict[str, Any] = {"monitor_frechet": frechet(self.reference, features_to_stats(feats))}
        if self.prdc is not None:
            pr = self.prdc.score(feats)
            scores.update(monitor_precision=pr["precision"], monitor_recall=pr["recall"])
        if logits is not None:
            coverage = class_coverage(logits.argmax(1), self.class_probs)
            scores.update(monitor_classes_covered=coverage["classes_covered"], monitor_class_kl=coverage["class_kl"])
            scores["_coverage"] = coverage
        return scores

    def score(self, model: nn.Module) -> float:
        """Fréchet distance of the decoded fixed draws against the reference."""
        return self.evaluate(model)["monitor_frechet"]

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        if epoch % self.every:
            return None
        out = self.evaluate(model)
        coverage = out.pop("_coverage", None)
        value = out["monitor_frechet"]
        self.history.append((epoch, value))
        if value < self.best - self.min_delta:
            self.best, self._since_best = value, 0
        else:
            self._since_best += 1
        out["monitor_frechet_best"] = self.best
        collapse = self.detector.update(coverage, out.get("monitor_recall"))
        if collapse:
            out["monitor_collapse"] = collapse
            log.warning("epoch %d: %s", epoch, collapse)
        log.info("epoch %d: monitor Fréchet distance %.4f (best %.4f)%s", epoch, value, self.best,
                 "".join(f", {k[8:]} {v:.3g}" for k, v in out.items()
                         if k in ("monitor_precision", "monitor_recall", "monitor_classes_covered")))
        if self.patience is not None and self._since_best >= self.patience:
            log.info("monitor: no improvement in %d evaluations, stopping", self.patience)
            out["stop"] = True
            out["stop_reason"] = (f"the sample monitor's Fréchet distance did not improve in {self.patience} "
                                  "evaluations")
        return out


def _class_probs(dataset: ImageDataset | None) -> torch.Tensor | None:
    """The class distribution (K,) of a labelled dataset, or None."""
    if dataset is None or dataset.labels is None or len(dataset) == 0:
        return None
    counts = torch.bincount(dataset.labels.long(), minlength=dataset.n_classes or 0).double()
    return counts / counts.sum()
