"""The ``classifier`` feature extractor: a small CNN trained once per dataset and cached.

Features are its penultimate layer (``feature_dim`` wide, after ReLU); its softmax feeds the
IS-style score.  Trained on the dataset's labels with a fixed seed; cached under
``<cache>/classifiers/<key>.pt`` with a JSON of its protocol (accuracies, epochs, data fingerprint), or
shipped with the package for default MNIST runs (:mod:`latentatlas.metrics.shipped`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.data.base import ImageDataset, to_float
from latentatlas.metrics.cached_net import cache_path, heldout_split, init_weights, load_cached_net, load_or_train_net
from latentatlas.rng import make_generator, to_device
from latentatlas.tensors import map_rows

log = logging.getLogger(__name__)

CLASSIFIER_VERSION = 1


class SmallCNN(nn.Module):
    """conv(s2) -> conv(s2) -> conv -> avg-pool 4x4 -> linear(feature_dim) -> linear(n_classes).

    Works for any (C, H, W) with H, W >= 8; input float (B, C, H, W) in [0, 1]."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32, feature_dim: int = 128) -> None:
        super().__init__()
        self.config = {"in_channels": in_channels, "n_classes": n_classes, "width": width,
                       "feature_dim": feature_dim}
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(2 * width * 16, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)
        self.name = "classifier"
        self.weights_hash = "untrained"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim)."""
        return self.body(x - 0.5)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.forward(x)
        return f, self.head(f)


def _accuracy(model: SmallCNN, images: torch.Tensor, labels: torch.Tensor, device: str) -> float:
    model.eval()
    with torch.no_grad():
        pred = map_rows(lambda x: model.logits(to_float(x)).argmax(1), images, batch_size=512, device=device)
    return int((pred == labels).sum()) / max(1, len(images))


def train_classifier(ds: ImageDataset, *, epochs: int = 3, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0, device: str = "cpu", heldout_fraction: float = 0.1) -> tuple[SmallCNN, dict]:
    """Train a :class:`SmallCNN` on ``ds`` (its labels); returns the model and a protocol dict with
    train and held-out accuracy (a seeded ``heldout_fraction`` of the rows is held out)."""
    if ds.labels is None:
        raise ValueError(f"extractor='classifier' needs a labelled dataset, but {ds.name!r} has no labels; "
                         "pick another extractor, e.g. extractor='pixels', 'celeba-attributes' (images with "
                         "attributes) or 'inception' (with its weights)")
    c, h, w = ds.image_shape
    if min(h, w) < 8:
        raise ValueError(f"extractor='classifier': images must be at least 8x8, got {h}x{w}")
    g = make_generator(seed)
    labels = ds.labels.to(torch.int64)
    held, train = heldout_split(len(ds), heldout_fraction, g)
    n_held = len(held)
    model = SmallCNN(c, int(labels.max()) + 1)
    init_weights(model, g)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    images, targets = ds.images.to(device), labels.to(device)   # once: a copy a step would wait for a GPU
    for epoch in range(epochs):
        model.train()
        perm = train[torch.randperm(len(train), generator=g)]
        for s in range(0, len(perm), batch_size):
            idx = to_device(perm[s:s + batch_size], device)
            loss = F.cross_entropy(model.logits(to_float(images[idx])), targets[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log.info("classifier epoch %d/%d: loss %.4f", epoch + 1, epochs, float(loss.detach()))
    protocol = {"train_accuracy": _accuracy(model, ds.images[train], labels[train], device),
                "heldout_accuracy": _accuracy(model, ds.images[held], labels[held], device) if n_held else None,
                "n_train": len(train), "n_heldout": n_held, "epochs": epochs, "seed": seed, "lr": lr,
                "batch_size": batch_size, "image_shape": [c, h, w], **model.config}
    return model.eval(), protocol


def load_classifier(path: str | Path, *, device: str = "cpu") -> SmallCNN:
    """Load a cached classifier (state dict file + ``.json`` protocol beside it), ``weights_only=True``."""
    return load_cached_net(path, _build, "classifier", device=device)


def _build(meta: dict) -> SmallCNN:
    return SmallCNN(meta["in_channels"], meta["n_classes"], meta["width"], meta["feature_dim"])


def load_or_train_classifier(ds: ImageDataset | None, *, cache_dir: Path, device: str = "cpu", seed: int = 0,
                             weights: str | None = None, epochs: int = 3, use_shipped: bool = True) -> SmallCNN:
    """The classifier for ``ds``: the one at ``weights``, else the one shipped for it (``use_shipped``, see
    :mod:`latentatlas.metrics.shipped`), else the cached one (trained and cached on first use)."""
    if weights is not None:
        return load_classifier(weights, device=device)
    if ds is None:
        raise ValueError("extractor='classifier' needs dataset= (labelled training images) to train on, "
                         "or weights= a cached classifier file")
    from latentatlas.metrics.features import dataset_fingerprint, labels_hash

    fp = dataset_fingerprint(ds)
    path = cache_path(cache_dir, "classifiers", ds.name, {"fingerprint": fp, "labels": labels_hash(ds), "seed": seed,
                                                          "epochs": epochs, "version": CLASSIFIER_VERSION})

    def train() -> tuple[SmallCNN, dict]:
        log.info("training the feature classifier for %s (%d images, %d epochs)", ds.name, len(ds), epochs)
        model, protocol = train_classifier(ds, epochs=epochs, seed=seed, device=device)
        log.info("classifier held-out accuracy %s", protocol["heldout_accuracy"])
        return model, {**protocol, "dataset": ds.name, "fingerprint": fp, "version": CLASSIFIER_VERSION}

    return load_or_train_net(path, what="classifier", build=_build, train=train, device=device,
                             use_shipped=use_shipped)
