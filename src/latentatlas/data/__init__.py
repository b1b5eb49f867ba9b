"""Dataset builders.  ``load_dataset(cfg, seed=...)`` is the one entry point: it builds the dataset
named by ``cfg.name`` (see :data:`DATASETS`), keeps ``cfg.limit`` of its images, resizes to
``cfg.image_size`` and assigns the train / val / test split from the seed.

Registered names: mnist (embedded 5,000 digits, or the IDX files in data.root), idx, npz,
image-folder, celeba, cifar10, olivetti, torchvision-mnist, torchvision-fashion-mnist,
torchvision-cifar10, torchvision-celeba, and the 2-D toy set ring.
"""

from __future__ import annotations

import logging

import torch

from latentatlas.config import DataConfig
from latentatlas.data import celeba, folder, idx, npz, torchvision_sets, toy  # noqa: F401  (registers loaders)
from latentatlas.data.base import (SPLITS, ImageDataset, assign_split, dataset_fingerprint, from_uint8_nhwc,
                                   to_float, to_uint8_nhwc)
from latentatlas.data.common import DATASETS, check_limit, check_size, resize_images
from latentatlas.data.idx import read_idx
from latentatlas.rng import make_generator

log = logging.getLogger(__name__)

__all__ = ["DATASETS", "SPLITS", "ImageDataset", "assign_split", "dataset_fingerprint", "from_uint8_nhwc",
           "limit_rows", "load_dataset", "read_idx", "resize_images", "to_float", "to_uint8_nhwc"]


def limit_rows(n: int, limit: int) -> torch.Tensor:
    """``limit`` row indices of ``n``, in order, drawn at random with a fixed generator: spread over the
    whole data set (sources are often sorted by class, so the first rows would be one class) and the same
    for every run seed."""
    return torch.randperm(n, generator=make_generator(0))[:limit].sort().values


def load_dataset(cfg: DataConfig, *, seed: int) -> ImageDataset:
    """Build ``cfg.name``, keep ``cfg.limit`` of its rows (see :func:`limit_rows`), resize to
    ``cfg.image_size`` (square, antialiased) and assign the split with ``seed``.  Images: uint8 (N, C, H, W)."""
    if not isinstance(cfg, DataConfig):
        raise TypeError(f"cfg: expected a DataConfig, got {type(cfg).__name__}")
    limit, size = check_limit(cfg.limit), check_size(cfg.image_size)
    ds = DATASETS.get(cfg.name)(cfg)
    if limit is not None and limit < len(ds):
        ds = ds.subset(limit_rows(len(ds), limit))
    if size is not None:
        ds.images = resize_images(ds.images, size)
    ds = assign_split(ds, seed=seed, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)
    log.info("dataset %s: %d images of shape %s", ds.name, len(ds), ds.image_shape)
    return ds

