"""Helpers every loader shares: the dataset registry, option checking, path checks, array layout
conversion to uint8 (N, C, H, W), and the antialiased square resize."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from latentatlas.config import DataConfig
from latentatlas.registry import Registry

log = logging.getLogger(__name__)

DATASETS: Registry = Registry("dataset")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def take_options(cfg: DataConfig, **defaults: Any) -> dict[str, Any]:
    """``cfg.options`` merged over ``defaults``; an option not in ``defaults`` is a ValueError naming it."""
    given = dict(cfg.options or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "(none)"
        raise ValueError(f"data.options: unknown option(s) {', '.join(map(repr, unknown))} for dataset "
                         f"{cfg.name!r}; expected: {known}")
    return {**defaults, **given}


def require_root(cfg: DataConfig, what: str) -> Path:
    """``cfg.root`` as an existing path; a clear error when it is unset or missing."""
    if not cfg.root:
        raise ValueError(f"data.root: dataset {cfg.name!r} needs data.root set to {what}, got None")
    return existing(cfg.root, "data.root")


def existing(path: str | Path, param: str, hint: str = "") -> Path:
    """``path`` expanded; FileNotFoundError naming ``param``, the path (and the folder a relative one is read
    from) and ``hint`` when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative to the current folder {str(Path.cwd())!r})"
        raise FileNotFoundError(f"{param}: no such file or folder: {p}{where}{'; ' + hint if hint else ''}")
    return p


def _optional_positive_int(param: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{param}: expected None or a positive integer, got {value!r}")
    return value


def check_limit(limit: int | None) -> int | None:
    """Validate ``data.limit`` (None or a positive int)."""
    return _optional_positive_int("data.limit", limit)


def check_size(size: int | None) -> int | None:
    """Validate ``data.image_size`` (None or a positive int)."""
    return _optional_positive_int("data.image_size", size)


def to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    """uint8 as is; integers in 0..255 cast; floats in [0, 1] scaled by 255 and rounded."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if arr.size == 0:
        raise ValueError(f"{where}: no images (array of shape {arr.shape})")
    lo, hi = float(arr.min()), float(arr.max())
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0 and hi <= 255:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return np.rint(arr * 255.0).astype(np.uint8)
    raise ValueError(f"{where}: expected uint8 images, integers in 0..255 or floats in [0, 1]; "
                     f"got dtype {arr.dtype} with values in [{lo:g}, {hi:g}]")


def to_nchw(arr: np.ndarray, where: str) -> torch.Tensor:
    """Images (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} -> uint8 tensor (N, C, H, W).

    When both the second and the last axis could be channels, (N, H, W, C) is assumed."""
    arr = to_uint8(arr, where)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    elif not (arr.ndim == 4 and arr.shape[1] in (1, 3)):
        raise ValueError(f"{where}: expected images of shape (N, H, W), (N, H, W, C) or (N, C, H, W) "
                         f"with C in {{1, 3}}, got {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def to_labels(arr: np.ndarray, n: int, where: str) -> torch.Tensor:
    """Integer labels (N,) or (N, 1) -> int64 tensor (N,); the count must match ``n`` images."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{where}: expected integer labels of shape (N,), got {arr.dtype} {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{where}: {arr.shape[0]} labels but {n} images")
    return torch.from_numpy(arr.astype(np.int64))


def resize_images(images: torch.Tensor, size: int, *, batch: int = 4096) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 (N, C, H, W) to uint8 (N, C, size, size), within one grey
    level of PIL's ``Image.resize(BILINEAR)``; a no-op at that size."""
    size = check_size(size)
    if tuple(images.shape[-2:]) == (size, size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size, size), dtype=torch.uint8)
    for i in range(0, images.shape[0], batch):
        out[i:i + batch] = _resize_batch(images[i:i + batch], size)
    return out


def _resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 bilinear antialiased resize (torch's fast uint8 kernel, float fallback where it is missing)."""
    kw = dict(size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    try:
        return F.interpolate(x, **kw).contiguous()
    except (RuntimeError, NotImplementedError):
        return F.interpolate(x.float(), **kw).round_().clamp_(0, 255).to(torch.uint8)


def crop_box(spec: Any, height: int, width: int, where: str) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) pixel bounds from a crop option: None/'none', 'center' (the largest
    centred square) or a list [top, bottom, left, right]; bounds are checked against the image."""
    if spec is None or spec == "none":
        return None
    if spec == "center":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return top, top + side, left, left + side
    if (isinstance(spec, (list, tuple)) and len(spec) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) for v in spec)):
        top, bottom, left, right = spec
        if 0 <= top < bottom <= height and 0 <= left < right <= width:
            return top, bottom, left, right
        raise ValueError(f"{where}: crop {list(spec)} does not fit images of height {height} and width {width}")
    raise ValueError(f"{where}: expected 'center', 'none' or [top, bottom, left, right], got {spec!r}")
