"""Score any set of generated images against a reference: ``evaluate_samples`` and ``evaluate_file``.

Metrics are registered by name in :data:`METRICS`; each is a function of an :class:`EvalContext`
returning a dict of scores.  Every result carries a ``protocol`` dict (extractor, weights hash, real
split, image counts, seed, k values) so numbers are only compared when they were made the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from latentatlas.data.base import ImageDataset, from_uint8_nhwc
from latentatlas.fileio import load_npz
from latentatlas.metrics.features import (Reference, build_extractor, extract_features, features_to_stats,
                                          load_reference_npz, reference_prdc_radii, reference_stats)
from latentatlas.metrics.frechet import frechet, frechet_infinity, frechet_infinity_sizes
from latentatlas.metrics.kid import kid
from latentatlas.metrics.memorization import data_copying_test, nearest_train_distances
from latentatlas.metrics.modes import MIN_SHARE, MISSING_RATIO, attribute_coverage, class_coverage
from latentatlas.metrics.prdc import prdc
from latentatlas.metrics.scores import inception_score
from latentatlas.registry import Registry
from latentatlas.rng import derive_seed, make_generator

log = logging.getLogger(__name__)

K_PRECISION_RECALL = 3
K_DENSITY_COVERAGE = 5
DEFAULT_METRICS = ("frechet", "kid", "prdc", "is", "classes", "attributes", "memorization")


@dataclass
class EvalContext:
    """What metrics see: the extractor, reference (real) features/statistics, fake features and logits,
    the training images (memorisation) and the seed.  Training features are computed on first use."""

    extractor: nn.Module
    real: Reference
    fake_features: torch.Tensor
    fake_logits: torch.Tensor | None
    train: ImageDataset | None
    seed: int
    batch_size: int = 256
    device: str = "cpu"
    protocol: dict = field(default_factory=dict)
    cache_dir: Path | None = None
    attribute_space: Callable[[], tuple[nn.Module, torch.Tensor, torch.Tensor]] | None = None
    data: ImageDataset | None = None      # the real images when given as a dataset (their labels, attributes)
    _train_features: torch.Tensor | None = None

    def generator(self, name: str) -> torch.Generator:
        return make_generator(derive_seed(self.seed, "metric", name))

    def real_features(self, metric: str) -> torch.Tensor:
        if self.real.features is None:
            raise MetricUnavailable(f"{metric} needs real images; the reference holds statistics only")
        return self.real.features

    def train_features(self, metric: str) -> torch.Tensor:
        if self.train is None:
            raise MetricUnavailable(f"{metric} needs train= (the training images)")
        if self._train_features is None:
            self._train_features = extract_features(self.extractor, self.train.images,
                                                    batch_size=self.batch_size, device=self.device)
            self.protocol["n_train"] = len(self.train)
        return self._train_features


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed from what was given (recorded under ``skipped``, not raised; logged as a
    warning)."""


class MetricNotApplicable(MetricUnavailable):
    """A metric that does not apply to this kind of data (class coverage of faces without class labels,
    attribute coverage of digits without attributes): recorded under ``skipped`` and logged at info level,
    since the default metric list names both."""


METRICS: Registry[Callable[[EvalContext], dict]] = Registry("metric")


@METRICS.register("frechet")
def _frechet(ctx: EvalContext) -> dict:
    return {"frechet": frechet(ctx.real.stats, features_to_stats(ctx.fake_features))}


@METRICS.register("frechet_inf")
def _frechet_inf(ctx: EvalContext) -> dict:
    """FD-infinity (Chong & Forsyth 2020): the Fréchet distance without its 1/N sample-size bias."""
    try:
        sizes = frechet_infinity_sizes(*ctx.fake_features.shape)
    except ValueError as exc:
        raise MetricUnavailable(str(exc)) from None
    ctx.protocol["frechet_inf_sizes"] = f"{sizes[0]}-{sizes[-1]} images, {len(sizes)} sizes"
    return frechet_infinity(ctx.real.stats, ctx.fake_features, generator=ctx.generator("frechet_inf"), sizes=sizes)


@METRICS.register("kid")
def _kid(ctx: EvalContext) -> dict:
    out = kid(ctx.real_features("kid"), ctx.fake_features, generator=ctx.generator("kid"))
    ctx.protocol["kid_subset_size"] = out.pop("kid_subset_size")
    return out


@METRICS.register("prdc")
def _prdc(ctx: EvalContext) -> dict:
    ctx.protocol.update(k_precision_recall=K_PRECISION_RECALL, k_density_coverage=K_DENSITY_COVERAGE)
    real = ctx.real_features("prdc")
    if real.shape[0] <= max(K_PRECISION_RECALL, K_DENSITY_COVERAGE):
        raise MetricUnavailable(f"prdc needs more than {max(K_PRECISION_RECALL, K_DENSITY_COVERAGE)} real images "
                                f"for its nearest-neighbour radii; the reference has {real.shape[0]}")
    radii = reference_prdc_radii(ctx.real, K_PRECISION_RECALL, K_DENSITY_COVERAGE, cache_dir=ctx.cache_dir)
    return prdc(real, ctx.fake_features, K_PRECISION_RECALL, k_dc=K_DENSITY_COVERAGE, real_radii=radii)


@METRICS.register("is")
def _is(ctx: EvalContext) -> dict:
    if ctx.fake_logits is None:
        raise MetricUnavailable(f"is needs an extractor with logits (classifier), not {ctx.extractor.name!r}")
    return inception_score(ctx.fake_logits, splits=min(10, ctx.fake_logits.shape[0]))


@METRICS.register("classes")
def _classes(ctx: EvalContext) -> dict:
    """Class coverage of the samples by the dataset classifier against the training class distribution."""
    if ctx.data is not None and ctx.data.labels is None and (ctx.train is None or ctx.train.labels is None):
        raise MetricNotApplicable(f"classes needs class labels; {ctx.data.name!r} has none")
    if ctx.fake_logits is None:
        raise MetricUnavailable(f"classes needs an extractor with logits (classifier), not {ctx.extractor.name!r}")
    if ctx.train is None or ctx.train.labels is None:
        raise MetricUnavailable("classes needs labelled training images (train=) for the real class distribution")
    counts = torch.bincount(ctx.train.labels.long(), minlength=ctx.fake_logits.shape[1]).double()
    out = class_coverage(ctx.fake_logits.argmax(1), counts / counts.sum())
    ctx.protocol["classes_min_share"] = MIN_SHARE
    return out


@METRICS.register("attributes")
def _attributes(ctx: EvalContext) -> dict:
    """Attribute coverage: per-attribute rates (mean probabilities) of samples and real images as an attribute
    net judges them (the extractor's own head, from the features already computed; when another network
    gives the Fréchet distance, e.g. Inception, the ``celeba-attributes`` net), and the real images' labelled
    rates when known."""
    if _has_attribute_head(ctx.extractor):
        net, real, fake = ctx.extractor, ctx.real_features("attributes"), ctx.fake_features
    elif ctx.attribute_space is not None:   # another network gives the Fréchet distance: judge with the net
        net, real, fake = ctx.attribute_space()
        ctx.protocol.update(attribute_extractor=net.name, attribute_weights_hash=net.weights_hash)
    elif ctx.data is not None and ctx.data.attributes is None:
        raise MetricNotApplicable(f"attributes needs images with attributes; {ctx.data.name!r} has none")
    else:
        raise MetricUnavailable(f"attributes needs an extractor with an attribute head (celeba-attributes) or a "
                                f"reference with attributes, not {ctx.extractor.name!r} alone")
    names = net.attribute_names
    with torch.no_grad():
        real_p, fake_p = (torch.sigmoid(net.head(f.to(ctx.device, torch.float32))).cpu() for f in (real, fake))
    labelled = None
    known = ctx.real.attribute_names
    if ctx.real.attributes is not None and set(names) <= set(known):
        labelled = ctx.real.attributes[:, [known.index(n) for n in names]].double().mean(0)
    ctx.protocol.update(attribute_rate="mean probability", attribute_missing_ratio=MISSING_RATIO)
    return attribute_coverage(real_p, fake_p, names, labelled=labelled)


def _has_attribute_head(extractor: nn.Module) -> bool:
    return bool(getattr(extractor, "attribute_names", None)) and isinstance(getattr(extractor, "head", None),
                                                                           nn.Module)


def _attribute_space(fake: torch.Tensor, real: ImageDataset, fit_on: ImageDataset, *, real_split: str,
                     n_real: int | None, batch_size: int, device: str, seed: int, cache_dir: Path | None):
    """A deferred (attribute net, real features, fake features) for attribute coverage when the Fréchet
    extractor has no attribute head: the ``celeba-attributes`` net trained (once, cached) on ``fit_on``."""
    def build() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        net = build_extractor("celeba-attributes", dataset=fit_on, cache_dir=cache_dir, device=device, seed=seed)
        ref = reference_stats(real, net, split=real_split, n=n_real, batch_size=batch_size, device=device,
                              cache_dir=cache_dir)
        return net, ref.features, extract_features(net, fake, batch_size=batch_size, device=device)
    return build


@METRICS.register("memorization")
def _memorization(ctx: EvalContext) -> dict:
    train = ctx.train_features("memorization")
    real = ctx.real_features("memorization")
    out = nearest_train_distances(train, ctx.fake_features, real)
    n_cells = max(1, min(20, ctx.fake_features.shape[0] // 50, train.shape[0]))   # ~50 samples a cell
    out.update(data_copying_test(train, real, ctx.fake_features, n_cells=n_cells,
                                 generator=ctx.generator("data_copying")))
    return out


def _reference(real: Any, extractor: nn.Module, *, real_split: str, n_real: int | None, batch_size: int,
               device: str, cache_dir: Path | None) -> Reference:
    if isinstance(real, ImageDataset):
        return reference_stats(real, extractor, split=real_split, n=n_real, batch_size=batch_size,
                               device=device, cache_dir=cache_dir)
    if isinstance(real, Reference):
        return real
    if isinstance(real, (str, Path)):
        mu, sigma = load_reference_npz(real)
        return Reference(mu, sigma, None, {"split": str(real)})
    if isinstance(real, (tuple, list)) and len(real) == 2:
        mu, sigma = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in real)
        return Reference(mu.double(), sigma.double(), None, {"split": real_split})
    raise TypeError(f"real: expected an ImageDataset, a Reference, (mu, sigma) or a .npz path, "
                    f"got {type(real).__name__}")


def evaluate_samples(fake: torch.Tensor, real: Any, *, metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
                     extractor: str | nn.Module = "classifier", train: ImageDataset | None = None, seed: int = 0,
                     device: str = "cpu", batch_size: int = 256, real_split: str = "test",
                     n_real: int | None = None, weights: str | None = None,
                     cache_dir: Path | None = None) -> dict[str, Any]:
    """Scores of generated images ``fake`` uint8 (N, C, H, W) against the reference ``real``.

    ``real``: the reference split as an ImageDataset (features cached on disk), or statistics only
    ((mu, sigma), a Reference, or a .npz path: then only ``frechet`` is possible).  ``train``: training
    images, used to train the classifier extractor (else ``real`` is used, with a warning) and for
    memorisation.  Returns ``{score: value, ..., "protocol": {...}, "skipped": {metric: reason}}``.
    """
    for name in metrics:
        METRICS.get(name)   # unknown names fail before any work
    if not isinstance(fake, torch.Tensor) or fake.dtype != torch.uint8 or fake.ndim != 4:
        raise ValueError(f"fake: expected a uint8 tensor (N, C, H, W), got "
                         f"{getattr(fake, 'dtype', type(fake).__name__)} {tuple(getattr(fake, 'shape', ()))}")
    if fake.shape[0] < 2:
        raise ValueError(f"fake: expected at least 2 images, got {fake.shape[0]}")
    if isinstance(real, ImageDataset) and real.image_shape != tuple(fake.shape[1:]):
        raise ValueError(f"fake: image shape {tuple(fake.shape[1:])} differs from the reference's {real.image_shape}")
    fit_on = train if train is not None else (real if isinstance(real, ImageDataset) else None)
    ext = build_extractor(extractor, dataset=fit_on, cache_dir=cache_dir, device=device, seed=seed, weights=weights)
    if train is None and fit_on is not None and weights is None and hasattr(ext, "protocol"):   # a trained net
        log.warning("no train= given: the %s extractor is trained on the reference split itself", ext.name)
    ref = _reference(real, ext, real_split=real_split, n_real=n_real, batch_size=batch_size, device=device,
                     cache_dir=cache_dir)
    want_logits = bool({"is", "classes"} & set(metrics)) and hasattr(ext, "features_and_logits")
    out = extract_features(ext, fake, batch_size=batch_size, device=device, logits=want_logits)
    fake_f, fake_logits = out if want_logits else (out, None)
    protocol = {"extractor": ext.name, "weights_hash": ext.weights_hash,
                "real_dataset": ref.protocol.get("dataset"), "real_split": real_split,
                "n_real": ref.protocol.get("count"), "n_fake": int(fake.shape[0]), "seed": seed}
    if getattr(ext, "weights_source", None):     # a trained feature net: shipped, cached or a user's file
        protocol["weights_source"] = ext.weights_source
    ctx = EvalContext(ext, ref, fake_f, fake_logits, train, seed, batch_size, device, protocol, cache_dir,
                      data=real if isinstance(real, ImageDataset) else None)
    if (isinstance(real, ImageDataset) and real.attributes is not None and fit_on is not None
            and fit_on.attributes is not None and not _has_attribute_head(ext)):
        ctx.attribute_space = _attribute_space(fake, real, fit_on, real_split=real_split, n_real=n_real,
                                               batch_size=batch_size, device=device, seed=seed, cache_dir=cache_dir)
    result: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in metrics:
        try:
            result.update(METRICS.get(name)(ctx))
        except MetricUnavailable as exc:
            level = logging.INFO if isinstance(exc, MetricNotApplicable) else logging.WARNING
            log.log(level, "metric %s skipped: %s", name, exc)
            skipped[name] = str(exc)
    result["protocol"] = protocol
    if skipped:
        result["skipped"] = skipped
    return result


def load_samples(path: str | Path) -> torch.Tensor:
    """uint8 (N, C, H, W) from a samples .npz whose ``arr_0`` is uint8 (N, H, W, C) (or (N, H, W))."""
    arrays = load_npz(path, "samples")
    if "arr_0" not in arrays:
        raise ValueError(f"samples {str(path)!r}: expected the array 'arr_0' (uint8 N x H x W x C), got "
                         f"{sorted(arrays)}")
    try:
        return from_uint8_nhwc(arrays["arr_0"])
    except ValueError as exc:
        raise ValueError(f"samples {str(path)!r}: {exc}") from None


@dataclass
class RealReference:
    """What ``--ref`` names: a dataset split (``dataset`` and its ``train`` part) or statistics only."""

    spec: str
    dataset: ImageDataset | None = None
    train: ImageDataset | None = None
    stats: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def real(self) -> Any:
        return self.dataset if self.dataset is not None else self.stats


def reference_from_spec(spec: str, *, seed: int = 0, root: str | None = None, limit: int | None = None,
                        data_overrides: list[str] | tuple[str, ...] = ()) -> RealReference:
    """``"DATASET:SPLIT"`` (e.g. ``"mnist:test"``, split one of train/val/test, default test) or a path
    to a .npz of ``mu`` and ``sigma``.  Datasets are loaded with ``latentatlas.data.load_dataset``;
    ``data_overrides`` are ``key=value`` settings of the dataset's ``data`` section (``image_size=64``,
    ``options.images=x``), read like ``--set``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"ref: expected 'DATASET:SPLIT' or a path to a .npz of mu and sigma, got {spec!r}")
    if spec.endswith(".npz"):
        return RealReference(spec, stats=load_reference_npz(spec))
    from latentatlas.config import DataConfig, apply_overrides, build_section
    from latentatlas.data import DATASETS, SPLITS, load_dataset

    name, _, split = spec.partition(":")
    if name not in DATASETS:
        raise ValueError(f"ref: unknown dataset {name!r} in {spec!r}; expected one of: {', '.join(DATASETS.names())} "
                         "(or a stats .npz)")
    split = split or "test"
    if split not in SPLITS:
        raise ValueError(f"ref: split must be one of {SPLITS}, got {split!r} in {spec!r}")
    settings = apply_overrides({"name": name, "root": root, "limit": limit}, data_overrides, flag="--ref-set")
    full = load_dataset(build_section(DataConfig, settings, "--ref-set"), seed=seed)
    return RealReference(f"{name}:{split}", dataset=full.part(split), train=full.part("train"))


def evaluate_file(samples: str | Path, ref: str, *, seed: int = 0, root: str | None = None,
                  data_overrides: list[str] | tuple[str, ...] = (), **kwargs: Any) -> dict[str, Any]:
    """``latentatlas evaluate SAMPLES.npz --ref DATASET:SPLIT``: the scores of a samples file.
    ``kwargs`` go to :func:`evaluate_samples` (metrics, extractor, device, batch_size, n_real, weights)."""
    fake = load_samples(samples)
    reference = reference_from_spec(ref, seed=seed, root=root, data_overrides=data_overrides)
    if reference.dataset is None:
        kwargs.setdefault("metrics", ("frechet",))
    result = evaluate_samples(fake, reference.real, train=reference.train, seed=seed,
                              real_split=reference.spec, **kwargs)
    result["protocol"]["samples"] = str(samples)
    return result
