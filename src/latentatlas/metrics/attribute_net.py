"""The ``celeba-attributes`` feature extractor: a CNN that predicts a face data set's binary attributes
(40 for CelebA), trained once on the training images and cached like the MNIST classifier.

Features are its penultimate layer (``feature_dim`` wide, after ReLU): they drive FD, KID and PRDC for
face runs.  Its attribute head (``head``: features -> logits) judges attribute coverage of samples and
attribute arithmetic.  Trained with BCE-with-logits, horizontal flips (face attributes do not depend on
the side) and a one-cycle learning rate; a seeded held-out part of the images gives per-attribute AUCs,
written to the protocol (``<cache>/attribute_nets/<name>-<key>.json``) beside the state dict.
There is no ``features_and_logits``: a softmax score (IS) and class coverage mean nothing for
multi-label attributes, so ``evaluate`` skips them for this extractor.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from latentatlas.data.base import ImageDataset, dataset_fingerprint, mirror, to_float
from latentatlas.metrics.cached_net import cache_path, heldout_split, init_weights, load_cached_net, load_or_train_net
from latentatlas.rng import make_generator, to_device
from latentatlas.tensors import map_rows

log = logging.getLogger(__name__)

ATTRIBUTE_NET_VERSION = 1
DEFAULT_EPOCHS = 10
MIN_SIDE = 16


class AttributeNet(nn.Module):
    """Four conv(3x3, stride 2)-BN-ReLU stages (width, 2w, 4w, 4w) -> avg-pool 4x4 -> linear(feature_dim)
    -> ReLU: the features; ``head``: linear(feature_dim, A) attribute logits.

    Input float (B, C, H, W) in [0, 1], H, W >= 16."""

    name = "celeba-attributes"

    def __init__(self, in_channels: int, attribute_names: list[str], width: int = 32,
                 feature_dim: int = 256) -> None:
        super().__init__()
        self.attribute_names = list(attribute_names)
        self.config = {"in_channels": in_channels, "attribute_names": self.attribute_names, "width": width,
                       "feature_dim": feature_dim}
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Linear(chans[-1] * 16, feature_dim), nn.ReLU())
        self.head = nn.Linear(feature_dim, len(self.attribute_names))
        self.weights_hash = "untrained"
        self.protocol: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, feature_dim)."""
        return self.body(x - 0.5)

    def attribute_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Attribute logits (B, A)."""
        return self.head(self.forward(x))

    def attribute_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Attribute probabilities (B, A): the sigmoid of the logits."""
        return torch.sigmoid(self.attribute_logits(x))


def attributes_hash(ds: ImageDataset) -> str:
    """sha256 (16 hex digits) of a dataset's attribute names and 0/1 values ('none' when it has none)."""
    if ds.attributes is None:
        return "none"
    h = hashlib.sha256("|".join(ds.attribute_names).encode())
    h.update(ds.attributes.to(torch.int8).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _check_trainable(ds: ImageDataset) -> None:
    if ds.attributes is None or ds.attributes.shape[1] == 0:
        raise ValueError(f"extractor='celeba-attributes' needs a dataset with binary attributes (like CelebA's "
                         f"list_attr_celeba.txt), but {ds.name!r} has none; pick another extractor, e.g. "
                         "extractor='classifier' (labelled images), 'pixels' or 'inception' (with its weights)")
    if len(ds.attribute_names) != ds.attributes.shape[1]:
        raise ValueError(f"{ds.name}: {ds.attributes.shape[1]} attribute columns but "
                         f"{len(ds.attribute_names)} attribute names")
    _, h, w = ds.image_shape
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"extractor='celeba-attributes': images must be at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")
    if len(ds) < 20:
        raise ValueError(f"extractor='celeba-attributes': expected at least 20 training images, got {len(ds)}")


@torch.no_grad()
def predict_logits(model: AttributeNet, images: torch.Tensor, *, device: str = "cpu",
                   batch_size: int = 512) -> torch.Tensor:
    """Attribute logits float32 (N, A) on the CPU of uint8 images (N, C, H, W)."""
    model.eval()
    return map_rows(lambda x: model.attribute_logits(to_float(x)), images, batch_size=batch_size, device=device)


def heldout_aucs(logits: torch.Tensor, attributes: torch.Tensor) -> list[float | None]:
    """AUC per attribute of ``logits`` (N, A) for 0/1 ``attributes`` (N, A); None where only one value occurs."""
    from latentatlas.latent.attributes import auc

    out = []
    for j in range(attributes.shape[1]):
        y = attributes[:, j]
        both = bool(y.any()) and not bool(y.all())
        out.append(round(auc(logits[:, j].numpy(), y.numpy()), 5) if both else None)
    return out


def train_attribute_net(ds: ImageDataset, *, epochs: int = DEFAULT_EPOCHS, batch_size: int = 64, lr: float = 3e-3,
                        seed: int = 0, device: str = "cpu", heldout_fraction: float = 0.1, width: int = 32,
                        feature_dim: int = 256) -> tuple[AttributeNet, dict]:
    """Train an :class:`AttributeNet` on ``ds`` (its attributes); returns the model and its protocol with
    per-attribute AUCs on a seeded ``heldout_fraction`` of the rows (and their mean)."""
    _check_trainable(ds)
    if epochs < 1:
        raise ValueError(f"epochs: expected a positive int, got {epochs!r}")
    c, h, w = ds.image_shape
    g = make_generator(seed)
    targets = ds.attributes.to(torch.float32)
    held, train = heldout_split(len(ds), heldout_fraction, g)
    n_held = len(held)
    model = AttributeNet(c, ds.attribute_names, width, feature_dim)
    init_weights(model, g)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    images, attributes = ds.images.to(device), targets.to(device)   # once: a copy a step would wait for a GPU
    for epoch in range(epochs):
        model.train()
        perm = train[torch.randperm(len(train), generator=g)]
        for s in range(0, len(perm), batch_size):
            idx = to_device(perm[s:s + batch_size], device)
            x = mirror(to_float(images[idx]), to_device(torch.rand(len(idx), generator=g) < 0.5, device))
            loss = F.binary_cross_entropy_with_logits(model.attribute_logits(x), attributes[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        log.info("attribute net epoch %d/%d: loss %.4f", epoch + 1, epochs, float(loss.detach()))
    aucs = heldout_aucs(predict_logits(model, ds.images[held], device=device), ds.attributes[held]) if n_held else []
    defined = [a for a in aucs if a is not None]
    protocol = {"heldout_aucs": dict(zip(ds.attribute_names, aucs)),
                "heldout_mean_auc": round(sum(defined) / len(defined), 5) if defined else None,
                "n_train": len(train), "n_heldout": n_held, "epochs": epochs, "seed": seed, "lr": lr,
                "batch_size": batch_size, "final_loss": round(float(loss.detach()), 5), "image_shape": [c, h, w],
                **model.config}
    return model.eval(), protocol


def _build(meta: dict) -> AttributeNet:
    return AttributeNet(meta["in_channels"], meta["attribute_names"], meta["width"], meta["feature_dim"])


def load_attribute_net(path: str | Path, *, device: str = "cpu") -> AttributeNet:
    """Load a cached attribute net (state dict file + ``.json`` protocol beside it), ``weights_only=True``."""
    return load_cached_net(path, _build, "attribute net", device=device)


def load_or_train_attribute_net(ds: ImageDataset | None, *, cache_dir: Path, device: str = "cpu", seed: int = 0,
                                weights: str | None = None, epochs: int = DEFAULT_EPOCHS) -> AttributeNet:
    """The cached attribute net for ``ds`` (trained and cached on first use), or the one at ``weights``."""
    if weights is not None:
        return load_attribute_net(weights, device=device)
    if ds is None:
        raise ValueError("extractor='celeba-attributes' needs dataset= (training images with attributes) to train "
                         "on, or weights= a cached attribute net file")
    _check_trainable(ds)
    fp = dataset_fingerprint(ds)
    path = cache_path(cache_dir, "attribute_nets", ds.name, {
        "fingerprint": fp, "attributes": attributes_hash(ds), "seed": seed, "epochs": epochs,
        "version": ATTRIBUTE_NET_VERSION})

    def train() -> tuple[AttributeNet, dict]:
        log.info("training the attribute net for %s (%d images, %d attributes, %d epochs)", ds.name, len(ds),
                 len(ds.attribute_names), epochs)
        model, protocol = train_attribute_net(ds, epochs=epochs, seed=seed, device=device)
        log.info("attribute net held-out mean AUC %s", protocol["heldout_mean_auc"])
        return model, {**protocol, "dataset": ds.name, "fingerprint": fp, "version": ATTRIBUTE_NET_VERSION}

    return load_or_train_net(path, what="attribute net", build=_build, train=train, device=device)
