"""torchvision datasets (optional extra ``latentatlas[vision]``), downloaded only when
``data.download`` is true.  torchvision is imported inside the loaders, never at module import."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.celeba import celeba_options, load_celeba
from latentatlas.data.common import DATASETS, take_options, to_labels, to_nchw
from latentatlas.fileio import default_cache_dir

log = logging.getLogger(__name__)


def import_torchvision() -> Any:
    """The torchvision.datasets module, or an ImportError that says how to install it."""
    try:
        import torchvision.datasets as tvd
    except ImportError as err:
        raise ImportError(f"this dataset needs torchvision: pip install latentatlas[vision] ({err})") from None
    return tvd


def torchvision_root(cfg: DataConfig) -> Path:
    """``data.root``, else $LATENTATLAS_CACHE/torchvision, else ~/.cache/latentatlas/torchvision."""
    if cfg.root:
        return Path(cfg.root).expanduser()
    return default_cache_dir() / "torchvision"


def open_set(cls: Any, cfg: DataConfig, **kwargs: Any) -> Any:
    """``cls(root, download=cfg.download, **kwargs)``; a missing copy becomes a FileNotFoundError."""
    root = torchvision_root(cfg)
    try:
        return cls(str(root), download=bool(cfg.download), **kwargs)
    except RuntimeError as err:
        if cfg.download:
            raise
        raise FileNotFoundError(f"data.name={cfg.name!r}: not found under {root} ({err}); set "
                                "data.download=true to download it, or data.root to where it is") from None


def train_and_test(cfg: DataConfig, cls_name: str, name: str) -> ImageDataset:
    """The train and test parts of a torchvision set exposing ``.data`` and ``.targets``; test rows
    get split 'test'."""
    take_options(cfg)
    cls = getattr(import_torchvision(), cls_name)
    parts = [open_set(cls, cfg, train=flag) for flag in (True, False)]
    xs = [to_nchw(np.asarray(p.data), f"torchvision {cls_name}") for p in parts]
    ys = [to_labels(np.asarray(p.targets), len(x), f"torchvision {cls_name} targets") for p, x in zip(parts, xs)]
    split = torch.cat([torch.zeros(len(xs[0]), dtype=torch.int8), torch.full((len(xs[1]),), 2, dtype=torch.int8)])
    classes = [str(c) for c in getattr(parts[0], "classes", [])] or [str(c) for c in range(int(ys[0].max()) + 1)]
    return ImageDataset(name, torch.cat(xs), torch.cat(ys), class_names=classes, split=split)


@DATASETS.register("torchvision-mnist")
def tv_mnist(cfg: DataConfig) -> ImageDataset:
    """MNIST through torchvision: 70,000 digits, the 10,000 test ones marked 'test'."""
    return train_and_test(cfg, "MNIST", "mnist")


@DATASETS.register("torchvision-fashion-mnist")
def tv_fashion_mnist(cfg: DataConfig) -> ImageDataset:
    """Fashion-MNIST through torchvision: 70,000 images, the 10,000 test ones marked 'test'."""
    return train_and_test(cfg, "FashionMNIST", "fashion-mnist")


@DATASETS.register("torchvision-cifar10")
def tv_cifar10(cfg: DataConfig) -> ImageDataset:
    """CIFAR-10 through torchvision: 60,000 images (N, 3, 32, 32), the 10,000 test ones marked 'test'."""
    return train_and_test(cfg, "CIFAR10", "cifar10")


@DATASETS.register("torchvision-celeba")
def tv_celeba(cfg: DataConfig) -> ImageDataset:
    """CelebA fetched by torchvision (<root>/celeba/...), then read like ``celeba`` (same options);
    rows of the official test partition are marked 'test'."""
    opts = celeba_options(cfg)
    tvd = import_torchvision()
    open_set(tvd.CelebA, cfg, split="all", target_type="attr")
    base = torchvision_root(cfg) / "celeba"
    return load_celeba(base / "img_align_celeba", cfg, opts, name="celeba")
