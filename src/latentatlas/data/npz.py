"""Datasets stored as numpy ``.npz`` archives: a generic loader and the CIFAR-10 / Olivetti layouts."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.common import DATASETS, require_root, take_options, to_labels, to_nchw
from latentatlas.fileio import load_npz

log = logging.getLogger(__name__)

X_KEYS = ("x", "images", "arr_0")
Y_KEYS = ("y", "labels", "target")


def find_npz(cfg: DataConfig, default_name: str | None = None) -> Path:
    """``cfg.root`` as an .npz file; a folder holding ``default_name`` or exactly one .npz also works."""
    root = require_root(cfg, "an .npz file")
    if root.is_file():
        return root
    if default_name is not None and (root / default_name).is_file():
        return root / default_name
    found = sorted(root.glob("*.npz"))
    if len(found) != 1:
        raise FileNotFoundError(f"data.root: expected an .npz file or a folder holding exactly one, "
                                f"found {len(found)} .npz files in {root}")
    return found[0]


def pick_key(keys: list[str], wanted: str | None, fallbacks: tuple[str, ...], path: Path, param: str,
             required: bool) -> str | None:
    """The array name to read: ``wanted`` when given (it must exist), else the first fallback present."""
    if wanted is not None:
        if wanted not in keys:
            raise ValueError(f"{path}: {param}={wanted!r} is not in the archive; keys found: {', '.join(keys)}")
        return wanted
    for key in fallbacks:
        if key in keys:
            return key
    if required:
        raise ValueError(f"{path}: no images array named {' / '.join(fallbacks)} (set {param}); "
                       f"keys found: {', '.join(keys) or '(none)'}")
    return None


def read_parts(path: Path, name: str, keys: list[tuple[str | None, str | None]],
               class_names_key: str | None = None, archive: dict[str, np.ndarray] | None = None) -> ImageDataset:
    """One dataset from (x_key, y_key) pairs of ``path`` (or of its already loaded ``archive``); rows of the
    second pair are split 'test'."""
    archive = load_npz(path, "data") if archive is None else archive
    found = list(archive)
    for key in [k for pair in keys for k in pair if k is not None] + [class_names_key]:
        if key is not None and key not in found:
            raise ValueError(f"{path}: array {key!r} is missing; keys found: {', '.join(found)}")
    xs = [to_nchw(archive[xk], f"{path}[{xk}]") for xk, _ in keys]
    ys = [None if yk is None else to_labels(archive[yk], x.shape[0], f"{path}[{yk}]")
          for x, (_, yk) in zip(xs, keys)]
    class_names = [str(c) for c in archive[class_names_key]] if class_names_key else []
    shapes = {tuple(x.shape[1:]) for x in xs}
    if len(shapes) > 1:
        raise ValueError(f"{path}: image arrays {[k for k, _ in keys]} have different shapes {sorted(shapes)}")
    labels = None if any(y is None for y in ys) else torch.cat(ys)
    split = None
    if len(xs) == 2:
        split = torch.cat([torch.zeros(len(xs[0]), dtype=torch.int8), torch.full((len(xs[1]),), 2, dtype=torch.int8)])
    if labels is not None and not class_names:
        class_names = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageDataset(name, torch.cat(xs), labels, class_names=class_names, split=split)


@DATASETS.register("npz")
def npz(cfg: DataConfig) -> ImageDataset:
    """``cfg.root``: an .npz with images (``x``, ``images`` or ``arr_0``; or ``options.x_key``) and
    optional labels (``y``, ``labels``, ``target``; or ``options.y_key``).  ``options.test_x_key`` /
    ``test_y_key`` add rows marked 'test'; ``options.class_names_key`` names the classes."""
    opts = take_options(cfg, x_key=None, y_key=None, test_x_key=None, test_y_key=None, class_names_key=None)
    path = find_npz(cfg)
    archive = load_npz(path, "data")
    keys = list(archive)
    xk = pick_key(keys, opts["x_key"], X_KEYS, path, "data.options.x_key", required=True)
    yk = pick_key(keys, opts["y_key"], Y_KEYS, path, "data.options.y_key", required=False)
    pairs = [(xk, yk)]
    if opts["test_x_key"] is not None:
        tyk = opts["test_y_key"]
        if (yk is None) != (tyk is None):
            raise ValueError(f"data.options.test_y_key: give labels for both or neither of {xk!r} and "
                             f"{opts['test_x_key']!r}; got y_key={yk!r}, test_y_key={tyk!r}")
        pairs.append((opts["test_x_key"], tyk))
    return read_parts(path, "npz", pairs, opts["class_names_key"], archive)


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> ImageDataset:
    """The cifar10_subset.npz layout: x_train, y_train, x_test (rows marked 'test'), y_test, class_names."""
    take_options(cfg)
    path = find_npz(cfg, "cifar10_subset.npz")
    return read_parts(path, "cifar10", [("x_train", "y_train"), ("x_test", "y_test")], "class_names")


@DATASETS.register("olivetti")
def olivetti(cfg: DataConfig) -> ImageDataset:
    """Olivetti faces: ``images`` (400, 64, 64) uint8 and ``target`` (the person, 0..39)."""
    take_options(cfg)
    path = find_npz(cfg, "olivetti_faces.npz")
    return read_parts(path, "olivetti", [("images", "target")])
