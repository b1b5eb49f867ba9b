"""How studies judge generated images: one feature space, the real reference and the training set computed
once, then Fréchet distance, precision/recall/density/coverage, memorisation and class coverage per call.

A :class:`Judge` works on anything its ``features`` function maps to feature rows: decoded images of a run
(:meth:`Judge.for_session`: the run's evaluation extractor, its evaluation split as the reference, its
training split for memorisation) or plain vectors in tests (``features`` = identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import frechet
from latentatlas.metrics.memorization import nearest_neighbours
from latentatlas.metrics.modes import class_coverage
from latentatlas.metrics.prdc import PRDCReference

COPY_QUANTILE = 0.05    # a sample "copies" when it is nearer a training image than 95 % of held-out images are
MEMORISATION_ROWS = 5000   # samples whose nearest training image is searched (the standard error of a 5 %
                           # copy fraction from 5,000 samples is 0.003)

Features = Callable[[torch.Tensor], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]


@dataclass
class Judge:
    """``features(x)`` maps images (n, ...) to features (n, F) (or (features, logits (n, K)) for a classifier);
    ``real`` (N, F) are the reference features, ``train`` (L, F) the training features (memorisation),
    ``class_shares`` (K,) the training class shares (class coverage), ``protocol`` how they were made."""

    features: Features
    real: torch.Tensor
    train: torch.Tensor | None = None
    class_shares: torch.Tensor | None = None
    protocol: dict = field(default_factory=dict)
    k: int = 3
    k_dc: int = 5

    def __post_init__(self) -> None:
        self.real = self.real.double()
        self.real_stats = features_to_stats(self.real)
        self.reference = PRDCReference.build(self.real.float(), self.k, k_dc=self.k_dc)
        self._real_to_train: torch.Tensor | None = None
        self.protocol = {**self.protocol, "n_real": int(self.real.shape[0]), "k_precision_recall": self.k,
                         "k_density_coverage": self.k_dc, "copy_quantile": COPY_QUANTILE,
                         "memorisation_rows": MEMORISATION_ROWS}

    @classmethod
    def for_session(cls, session, *, n_real: int = 10000, seed: int = 0) -> "Judge":
        """The run's evaluation extractor and split (``n_real`` images drawn with ``seed``) as reference, its
        training split for memorisation and class shares."""
        from latentatlas.data.base import to_uint8
        from latentatlas.metrics.features import build_extractor, extract_features, reference_stats

        config, data, device = session.config, session.data, str(session.device)
        train, real_part = data.part("train"), data.part(config.evaluate.split)
        ext = build_extractor(config.evaluate.extractor, dataset=train, device=device, seed=config.data_seed)
        real = reference_stats(real_part, ext, split=config.evaluate.split, n=min(n_real, len(real_part)),
                               subset_seed=seed, device=device)
        train_ref = reference_stats(train, ext, split="train", device=device)
        with_logits = hasattr(ext, "features_and_logits")

        def features(x: torch.Tensor):
            return extract_features(ext, to_uint8(x), device=device, logits=with_logits)

        shares = None
        if with_logits and train.labels is not None:
            counts = torch.bincount(train.labels.long()).double()
            shares = counts / counts.sum()
        protocol = {"extractor": ext.name, "weights_hash": ext.weights_hash, "real": f"{data.name}:"
                    f"{config.evaluate.split}", "n_train": len(train)}
        return cls(features, real.features, train_ref.features, shares, protocol)

    # ------------------------------------------------------------------------------------------- scores
    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (n, ...) -> features (n, F) float64 and logits (n, K) or None."""
        out = self.features(x)
        feats, logits = out if isinstance(out, tuple) else (out, None)
        return feats.double(), logits

    def score(self, x: torch.Tensor, *, memorisation: bool = True) -> dict[str, float]:
        """Every score of images ``x`` (n, ...): see :meth:`score_features`."""
        return self.score_features(*self.embed(x), memorisation=memorisation)

    def score_features(self, f: torch.Tensor, logits: torch.Tensor | None = None, *,
                       memorisation: bool = True) -> dict[str, float]:
        """``frechet``, ``precision``, ``recall``, ``density``, ``coverage``; with training features
        ``copy_fraction`` (share of samples nearer a training image than the ``COPY_QUANTILE`` quantile of
        held-out images are; about 0.05 when samples are as new as held-out images) and ``nn_train_ratio``
        (median distance to the nearest training image, samples over held-out), unless ``memorisation`` is
        False (the search over every training image is the slowest part of a score); with logits
        ``classes_covered`` and ``confidence`` (mean top class probability)."""
        out = {"frechet": frechet(self.real_stats, features_to_stats(f)), **self.reference.score(f.float())}
        if memorisation and self.train is not None:
            out.update(self.memorisation(f))
        if logits is not None:
            out["confidence"] = float(logits.softmax(1).max(1).values.mean())
            if self.class_shares is not None:
                out["classes_covered"] = class_coverage(logits.argmax(1), self.class_shares)["classes_covered"]
        return out

    def memorisation(self, f: torch.Tensor) -> dict[str, float]:
        """``copy_fraction`` and ``nn_train_ratio`` of features (n, F) against the training features, from the
        first ``MEMORISATION_ROWS`` rows of the samples and of the reference (the nearest-neighbour search
        against every training image is the slowest part of a score)."""
        if self.train is None:
            raise ValueError("memorisation needs the training features (Judge.train)")
        if self._real_to_train is None:
            self._real_to_train = nearest_neighbours(self.train, self.real[:MEMORISATION_ROWS])[0]
        d_fake = nearest_neighbours(self.train, f[:MEMORISATION_ROWS])[0]
        threshold = torch.quantile(self._real_to_train, COPY_QUANTILE)
        return {"copy_fraction": float((d_fake < threshold).double().mean()),
                "nn_train_ratio": float(d_fake.median() / self._real_to_train.median().clamp_min(1e-12))}

    def realism(self, f: torch.Tensor) -> torch.Tensor:
        """Realism score of Kynkäänniemi et al. (2019) per feature row (n,): max over real points of
        (k-NN radius / distance); >= 1 inside the real manifold."""
        real, radii = self.reference.features.double(), self.reference.radii[:, 0].double().sqrt()
        out = torch.empty(f.shape[0], dtype=torch.float64)
        for s in range(0, f.shape[0], 1024):
            d = torch.cdist(f[s:s + 1024].double(), real).clamp_min(1e-12)
            out[s:s + 1024] = (radii[None] / d).max(1).values
        return out
