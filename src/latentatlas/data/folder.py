"""Folders of image files (PNG / JPEG): ``root/<class>/*.png`` with labels from the sorted class
folder names, or a flat folder of images without labels.  Also the image decoding shared with CelebA."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np
import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.common import (DATASETS, IMAGE_SUFFIXES, check_limit, check_size, require_root,
                                     resize_images, take_options)

log = logging.getLogger(__name__)

GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def decode(source: str | Path | bytes | BinaryIO, where: str, grayscale: bool | None) -> np.ndarray:
    """One image file -> uint8 (H, W, C): C = 1 when ``grayscale`` (or, with None, when the file is
    grey), else 3 (RGB).  Errors name ``where``."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with Image.open(source) as img:
            gray = img.mode in GRAY_MODES if grayscale is None else grayscale
            if img.mode in ("I", "I;16", "F") and gray:  # 16-bit / float grey: scale to 8 bits
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if img.mode != "F" or arr.max() > 1.0 else 1.0
                return np.rint(arr.clip(0, top) * (255.0 / top)).astype(np.uint8)[..., None]
            arr = np.array(img.convert("L" if gray else "RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{where}: cannot decode the image ({err})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def stack(arrays: Sequence[np.ndarray], names: Sequence[str], size: int | None) -> torch.Tensor:
    """Decoded (H, W, C) images -> uint8 (N, C, H, W).  Grey images are repeated to RGB when others are
    colour.  Different sizes are resized to ``size``, or are an error naming a file when ``size`` is None."""
    channels = max(a.shape[2] for a in arrays)
    first = arrays[0].shape[:2]
    same = all(a.shape[:2] == first for a in arrays)
    if not same and size is None:
        i = next(i for i, a in enumerate(arrays) if a.shape[:2] != first)
        raise ValueError(f"{names[i]}: image size {arrays[i].shape[1]}x{arrays[i].shape[0]} (WxH) differs from "
                         f"{first[1]}x{first[0]} of {names[0]}; set data.image_size to resize all images")
    tensors = [torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).expand(channels, -1, -1)
               for a in arrays]
    if same:
        images = torch.stack(tensors)
        return images if size is None else resize_images(images, size)
    return torch.stack([resize_images(t[None], size)[0] for t in tensors])


def list_images(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Image files under ``root`` (sorted), their class index (or None for a flat folder), class names."""
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")  # noqa: E731
    top = sorted(p for p in root.iterdir() if is_image(p))
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = {c: sorted(p for p in (root / c).rglob("*") if is_image(p)) for c in classes}
    classes = [c for c in classes if per_class[c]]
    if top and classes:
        raise ValueError(f"data.root: {root} mixes images ({top[0].name}, ...) with class folders "
                         f"({', '.join(classes[:3])}, ...); use one layout")
    if top:
        return top, None, []
    if not classes:
        raise ValueError(f"data.root: no {'/'.join(IMAGE_SUFFIXES)} images in {root} or its class folders")
    files = [p for c in classes for p in per_class[c]]
    labels = [i for i, c in enumerate(classes) for _ in per_class[c]]
    return files, labels, classes


@DATASETS.register("image-folder")
def image_folder(cfg: DataConfig) -> ImageDataset:
    """``root/<class>/*.png|jpg|jpeg`` (labels from sorted folder names) or a flat folder (no labels).
    Option ``grayscale``: True (1 channel), False (RGB) or None (grey only when every file is grey)."""
    opts: dict[str, Any] = take_options(cfg, grayscale=None)
    if opts["grayscale"] not in (None, True, False):
        raise ValueError(f"data.options.grayscale: expected true, false or null, got {opts['grayscale']!r}")
    root = require_root(cfg, "a folder of images")
    if not root.is_dir():
        raise ValueError(f"data.root: expected a folder of images, got the file {root}")
    files, labels, classes = list_images(root)
    limit = check_limit(cfg.limit)
    files, labels = files[:limit], (labels[:limit] if labels is not None else None)
    arrays = [decode(p, str(p), opts["grayscale"]) for p in files]
    images = stack(arrays, [str(p) for p in files], check_size(cfg.image_size))
    log.info("read %d images from %s", len(files), root)
    y = None if labels is None else torch.tensor(labels, dtype=torch.int64)
    return ImageDataset("image-folder", images, y, class_names=classes)
