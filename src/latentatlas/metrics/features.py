"""Feature extractors by name, float64 streaming statistics and the on-disk reference-statistics cache.

An extractor is a ``torch.nn.Module`` with ``name`` (str), ``weights_hash`` (str) and
``forward(x float (B, C, H, W) in [0, 1]) -> (B, D)``; the classifier also has ``logits(x) -> (B, K)``.
Statistics are (mu (D,), sigma (D, D)) in float64, sigma with the unbiased 1/(N-1) normalisation
(``np.cov(rowvar=False)``, as pytorch-fid).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from latentatlas.data.base import ImageDataset, dataset_fingerprint, to_float
from latentatlas.fileio import default_cache_dir, json_key, load_npz, save_npz
from latentatlas.registry import Registry
from latentatlas.rng import make_generator
from latentatlas.tensors import map_rows

log = logging.getLogger(__name__)

EXTRACTORS: Registry[Callable[..., nn.Module]] = Registry("feature extractor")
STATS_VERSION = 1


def cache_root(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` if given, else the default cache folder."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


def module_hash(module: nn.Module) -> str:
    """sha256 (first 16 hex digits) of a module's state dict: names, shapes and bytes, in order."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def labels_hash(ds: ImageDataset) -> str:
    """sha256 (16 hex digits) of a dataset's labels ('none' when it has none)."""
    if ds.labels is None:
        return "none"
    return hashlib.sha256(ds.labels.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- extractors
class PixelExtractor(nn.Module):
    """Raw pixels as features: (B, C, H, W) -> (B, C*H*W)."""

    name = "pixels"
    weights_hash = "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class ModuleExtractor(nn.Module):
    """Wraps any user module mapping (B, C, H, W) in [0, 1] to (B, D) (or more dims, flattened)."""

    def __init__(self, module: nn.Module, name: str | None = None) -> None:
        super().__init__()
        self.module = module
        self.name = name or f"module:{type(module).__name__}"
        self.weights_hash = module_hash(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x).flatten(1)


@EXTRACTORS.register("pixels")
def _pixels(**_: Any) -> nn.Module:
    return PixelExtractor()


@EXTRACTORS.register("classifier")
def _classifier(*, dataset: ImageDataset | None, cache_dir: Path, device: str, seed: int,
                weights: str | None = None, **_: Any) -> nn.Module:
    from latentatlas.metrics.classifier import load_or_train_classifier

    return load_or_train_classifier(dataset, cache_dir=cache_dir, device=device, seed=seed, weights=weights)


@EXTRACTORS.register("celeba-attributes")
def _celeba_attributes(*, dataset: ImageDataset | None, cache_dir: Path, device: str, seed: int,
                       weights: str | None = None, **_: Any) -> nn.Module:
    from latentatlas.metrics.attribute_net import load_or_train_attribute_net

    return load_or_train_attribute_net(dataset, cache_dir=cache_dir, device=device, seed=seed, weights=weights)


def default_extractor(dataset: ImageDataset | None) -> str:
    """The extractor ``auto`` stands for: ``classifier`` for labelled images; otherwise ``inception`` when
    its weights are on disk, else ``celeba-attributes`` for images with attributes (faces), else ``pixels``."""
    from latentatlas.metrics.inception import find_weights

    if dataset is not None and dataset.labels is not None:
        return "classifier"
    try:
        find_weights(None)
        return "inception"
    except FileNotFoundError:
        return "celeba-attributes" if dataset is not None and dataset.attributes is not None else "pixels"


@EXTRACTORS.register("auto")
def _auto(*, dataset: ImageDataset | None = None, **kwargs: Any) -> nn.Module:
    name = default_extractor(dataset)
    log.info("extractor 'auto': %s", name)
    return EXTRACTORS.get(name)(dataset=dataset, **kwargs)


@EXTRACTORS.register("ring")
def _ring(*, dataset: ImageDataset | None = None, **_: Any) -> nn.Module:
    from latentatlas.metrics.modes import RingExtractor

    return RingExtractor.for_dataset(dataset)


@EXTRACTORS.register("inception")
def _inception(*, weights: str | None = None, **_: Any) -> nn.Module:
    from latentatlas.metrics.inception import load_fid_inception

    return load_fid_inception(weights)


def build_extractor(name: str | nn.Module, *, dataset: ImageDataset | None = None, cache_dir: Path | None = None,
                    device: str | torch.device = "cpu", seed: int = 0, weights: str | None = None) -> nn.Module:
    """An extractor by name (``pixels``, ``classifier``, ``celeba-attributes``, ``inception``, ``auto``: see
    :func:`default_extractor`) or wrapping a user module.

    ``dataset`` (training images) is needed by ``classifier`` (labelled) and ``celeba-attributes`` (with
    attributes); ``weights`` is a weights file (``inception``, or a cached classifier / attribute net state
    dict).  Returned in eval mode on ``device``.
    """
    if isinstance(name, nn.Module):
        ext = name if hasattr(name, "weights_hash") and hasattr(name, "name") else ModuleExtractor(name)
    elif isinstance(name, str):
        factory = EXTRACTORS.get(name)
        ext = factory(dataset=dataset, cache_dir=cache_root(cache_dir),
                      device=str(device), seed=int(seed), weights=weights)
    else:
        raise TypeError(f"extractor: expected a name ({', '.join(EXTRACTORS.names())}) or a torch module, "
                        f"got {type(name).__name__}")
    return ext.to(device).eval()


def _check_images(images: torch.Tensor, param: str = "images") -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{param}: expected a uint8 tensor (N, C, H, W), got {got}")


@torch.no_grad()
def extract_features(extractor: nn.Module, images: torch.Tensor, *, batch_size: int = 256,
                     device: str | torch.device = "cpu", logits: bool = False):
    """Features float64 (N, D) on the CPU of uint8 images (N, C, H, W); with ``logits=True`` also (N, K)
    logits."""
    _check_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if logits and not hasattr(extractor, "features_and_logits"):
        raise ValueError(f"extractor {getattr(extractor, 'name', extractor)!r} has no logits; "
                         "the IS-style score needs extractor='classifier'")

    def features(x: torch.Tensor):
        if logits:
            return tuple(t.double() for t in extractor.features_and_logits(to_float(x)))
        return extractor(to_float(x)).double()
    was_training = extractor.training
    extractor.eval()
    try:
        return map_rows(features, images, batch_size=batch_size, device=device)
    finally:
        extractor.train(was_training)


# ------------------------------------------------------------------------------------------ statistics
class RunningStats:
    """Streaming mean and covariance in float64 (Chan et al. pairwise merge): independent of batching."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, feats: torch.Tensor | np.ndarray) -> "RunningStats":
        """Add a batch of features (B, D)."""
        x = torch.as_tensor(feats).to(torch.float64)
        if x.ndim != 2:
            raise ValueError(f"feats: expected a 2-D (B, D) array, got shape {tuple(x.shape)}")
        if self.mean is not None and x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"feats: expected {self.mean.shape[0]} columns, got {x.shape[1]}")
        nb = x.shape[0]
        if nb == 0:
            return self
        mb = x.mean(0)
        xc = x - mb
        m2b = xc.T @ xc
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return self
        total = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / total)
        self.m2 = self.m2 + m2b + torch.outer(delta, delta) * (self.n * nb / total)
        self.n = total
        return self

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu (D,), sigma (D, D)) float64, sigma normalised by N - 1."""
        if self.n < 2:
            raise ValueError(f"RunningStats: need at least 2 feature rows for a covariance, got {self.n}")
        return self.mean.clone(), self.m2 / (self.n - 1)


def features_to_stats(f: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) float64 of features (N, D)."""
    return RunningStats().update(f).result()


def load_reference_npz(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) from an external .npz with keys ``mu`` and ``sigma`` (pytorch-fid's format)."""
    data = load_npz(path, "reference statistics")
    missing = {"mu", "sigma"} - set(data)
    if missing:
        raise ValueError(f"reference statistics {str(path)!r}: expected keys 'mu' and 'sigma', got {sorted(data)}")
    try:
        mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"reference statistics {str(path)!r}: expected numeric 'mu' and 'sigma'") from None
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"reference statistics {path}: expected mu (D,) and sigma (D, D), "
                         f"got {mu.shape} and {sigma.shape}")
    return torch.from_numpy(mu), torch.from_numpy(sigma)


# ------------------------------------------------------------------------------------- reference cache
@dataclass
class Reference:
    """Reference statistics and (optionally) features of real images, with the protocol that made them,
    and the images' labelled attributes (int8 (N, A) of 0/1, named by ``attribute_names``) when known."""

    mu: torch.Tensor
    sigma: torch.Tensor
    features: torch.Tensor | None = None
    protocol: dict = field(default_factory=dict)
    prdc_radii: dict = field(default_factory=dict, repr=False)   # (k, k_dc) -> (N, 2) float32, in memory
    attributes: torch.Tensor | None = field(default=None, repr=False)
    attribute_names: list[str] = field(default_factory=list, repr=False)

    @property
    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu, self.sigma


def stats_key(protocol: dict) -> str:
    """sha256 key (24 hex digits) of everything that determines reference statistics."""
    return json_key(protocol, 24)


def reference_stats(dataset: ImageDataset, extractor: nn.Module, *, split: str, n: int | None = None,
                    subset_seed: int = 0, transform: str = "identity", batch_size: int = 256,
                    device: str | torch.device = "cpu", cache_dir: Path | None = None,
                    use_cache: bool = True) -> Reference:
    """Statistics and features of ``dataset`` (the ``split`` part), or of ``n`` of its images drawn
    without replacement with ``subset_seed`` (datasets are often stored sorted by class), cached on
    disk under a key of (dataset fingerprint, split, transform, extractor, weights hash, count)."""
    if n is not None and (n < 2 or n > len(dataset)):
        raise ValueError(f"n: expected 2 <= n <= {len(dataset)} (images in {dataset.name}:{split}), got {n}")
    if n is None or n == len(dataset):
        ds = dataset
    else:
        g = make_generator(subset_seed)
        ds = dataset.subset(torch.randperm(len(dataset), generator=g)[:n].sort().values)
    protocol = {"dataset": dataset.name, "fingerprint": dataset_fingerprint(ds), "split": split,
                "transform": transform, "extractor": extractor.name, "weights_hash": extractor.weights_hash,
                "count": len(ds), "version": STATS_VERSION}
    path = cache_root(cache_dir) / "stats" / f"{stats_key(protocol)}.npz"
    labelled = {"attributes": ds.attributes, "attribute_names": list(ds.attribute_names)}
    data = read_cached(path, ("mu", "sigma", "features")) if use_cache else None
    if data is not None:
        log.info("reference statistics from cache %s", path)
        return Reference(torch.from_numpy(data["mu"]), torch.from_numpy(data["sigma"]),
                         torch.from_numpy(data["features"]).double(), protocol, **labelled)
    feats = extract_features(extractor, ds.images, batch_size=batch_size, device=device)
    mu, sigma = features_to_stats(feats)
    if use_cache:
        save_npz(path, mu=mu.numpy(), sigma=sigma.numpy(), features=feats.float().numpy(),
                 protocol=np.array(json.dumps(protocol)))
        log.info("reference statistics written to %s", path)
    return Reference(mu, sigma, feats, protocol, **labelled)


def read_cached(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """A cached .npz holding ``keys``, or None when it is absent or damaged (then it is computed again)."""
    if not path.is_file():
        return None
    try:
        data = load_npz(path, "cached statistics")
    except ValueError as exc:
        log.warning("%s; computing it again", exc)
        return None
    return data if all(k in data for k in keys) else None


def reference_prdc_radii(ref: Reference, k: int, k_dc: int, *, cache_dir: Path | None = None,
                         use_cache: bool = True) -> torch.Tensor:
    """Squared float32 k / k_dc radii (N, 2) of the reference features (``prdc``'s ``real_radii``):
    computed once, kept on ``ref`` and, for references made by :func:`reference_stats`, cached on disk
    beside the statistics under the statistics key plus (k, k_dc)."""
    from latentatlas.metrics.prdc import prdc_real_radii

    if (k, k_dc) in ref.prdc_radii:
        return ref.prdc_radii[(k, k_dc)]
    if ref.features is None:
        raise ValueError("ref: expected a Reference with features for PRDC radii, got statistics only")
    path = None
    if use_cache and "fingerprint" in ref.protocol:
        key = stats_key({**ref.protocol, "prdc_k": [int(k), int(k_dc)], "prdc_dtype": "float32"})
        path = cache_root(cache_dir) / "stats" / f"{key}.prdc.npz"
    data = read_cached(path, ("radii",)) if path is not None else None
    if data is not None:
        radii = torch.from_numpy(data["radii"])
        log.info("PRDC reference radii from cache %s", path)
    else:
        radii = prdc_real_radii(ref.features, k, k_dc=k_dc, dtype=torch.float32)
        if path is not None:
            save_npz(path, radii=radii.numpy())
            log.info("PRDC reference radii written to %s", path)
    ref.prdc_radii[(k, k_dc)] = radii
    return radii
