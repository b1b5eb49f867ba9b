"""Decoded images kept on disk so that JPEG sources are decoded once.

A loader that decodes compressed images (CelebA's JPEGs) hands :func:`cached_images` a key describing
everything the decoded array depends on (source files, kept names, crop, size) and a function that
decodes.  The first call decodes and writes ``<cache>/datasets/<name>-<key>.npy`` (uint8 (N, C, H, W),
written atomically); later calls memory-map it (copy-on-write, so callers may modify their copy).
Source files are identified by path, size and modification time: replacing a file invalidates the entry.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from latentatlas.fileio import atomic_path, default_cache_dir, json_key

log = logging.getLogger(__name__)

CACHE_VERSION = 1


def _identity(value: Any) -> Any:
    """JSON-able identity of a key value: paths become (resolved path, size, mtime)."""
    if isinstance(value, Path):
        stat = value.stat()
        return [str(value.resolve()), stat.st_size, stat.st_mtime_ns]
    if isinstance(value, (list, tuple)):
        return [_identity(v) for v in value]
    return value


def cache_key(key: dict[str, Any]) -> str:
    """sha256 (first 20 hex digits) of ``key`` with its paths replaced by their identity."""
    return json_key({"version": CACHE_VERSION, **{k: _identity(v) for k, v in key.items()}}, 20)


def cache_path(name: str, key: dict[str, Any]) -> Path:
    """Where the decoded images of ``name`` under ``key`` are kept."""
    return default_cache_dir() / "datasets" / f"{name}-{cache_key(key)}.npy"


def _read(path: Path, n: int | None) -> torch.Tensor | None:
    """The cached uint8 (N, C, H, W) array memory-mapped, or None when absent or not what was stored."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError) as exc:
        log.warning("decoded-image cache %s cannot be read (%s); decoding again", path, exc)
        return None
    if arr.dtype != np.uint8 or arr.ndim != 4 or (n is not None and arr.shape[0] != n):
        log.warning("decoded-image cache %s holds %s %s, not uint8 (N=%s, C, H, W); decoding again",
                    path, arr.dtype, arr.shape, n)
        return None
    return torch.from_numpy(arr)


def cached_images(name: str, key: dict[str, Any], decode: Callable[[], torch.Tensor], *,
                  n: int | None = None) -> torch.Tensor:
    """uint8 (N, C, H, W) images: memory-mapped from the cache when an entry for ``key`` exists (with
    ``n`` rows, when given), else ``decode()``-d and written to the cache."""
    path = cache_path(name, key)
    images = _read(path, n)
    if images is not None:
        log.info("decoded images of %s from the cache %s", name, path)
        return images
    images = decode()
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"decode: expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, images.numpy(), allow_pickle=False)
        log.info("decoded images of %s cached at %s (%.1f MB)", name, path, path.stat().st_size / 1e6)
    except OSError as exc:   # a read-only or full cache folder costs speed, not the load
        log.warning("decoded images of %s not cached (%s)", name, exc)
    return images
