"""CelebA aligned faces with their 40 binary attributes, read from a folder or straight from a .tar.

The attribute list is the official ``list_attr_celeba.txt`` format: line 1 the number of images,
line 2 the attribute names, then ``<file> v1 ... vA`` with -1/+1 (0/1 also accepted).  Only the
images that are kept (``data.limit``) are decoded, and only once: the cropped and resized uint8 images
are cached (:mod:`latentatlas.data.decoded_cache`) under a key of the source files, the kept names, the
crop and the size, and later loads memory-map them.

Geometry: ``crop: center`` (the default) takes the largest centred square, i.e. rows 10:99 of the
89 x 109 half-size aligned faces (rows 20:198 of the official 178 x 218), then resizes it to 64 x 64
with antialiasing (:func:`latentatlas.data.common.resize_images`).
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.common import (DATASETS, IMAGE_SUFFIXES, check_limit, check_size, crop_box, existing,
                                     require_root, take_options)
from latentatlas.data.decoded_cache import cached_images
from latentatlas.data.folder import decode, stack

log = logging.getLogger(__name__)

DEFAULT_SIZE = 64  # image side when a crop is applied and data.image_size is unset


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(file names, attribute names, int8 (N, A) of 0/1) from an official-format attribute list."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(f"{path}: expected the image count on line 1 and attribute names on line 2")
    names, rows = lines[1].split(), [line.split() for line in lines[2:]]
    if int(lines[0]) != len(rows):
        raise ValueError(f"{path}: line 1 announces {int(lines[0])} images but {len(rows)} rows follow")
    bad = next((i for i, r in enumerate(rows) if len(r) != len(names) + 1), None)
    if bad is not None:
        raise ValueError(f"{path}: line {bad + 3} has {len(rows[bad]) - 1} values, expected {len(names)}")
    try:
        values = np.array([r[1:] for r in rows], dtype=np.int8).reshape(len(rows), len(names))
    except ValueError as err:
        raise ValueError(f"{path}: attribute values must be -1/+1 or 0/1 ({err})") from None
    if not np.isin(values, (-1, 0, 1)).all():
        raise ValueError(f"{path}: attribute values must be -1/+1 or 0/1, found {sorted(set(values.flat))}")
    return [r[0] for r in rows], names, (values > 0).astype(np.int8)


def find_attribute_file(root: Path, given: str | None) -> Path:
    """``given``, else list_attr_celeba.txt (or list_attr_celeba*.txt) in or beside ``root``."""
    if given is not None:
        return existing(given, "data.options.attributes")
    places = ([root, root.parent] if root.is_dir() else [root.parent])
    for place in places:
        if (place / "list_attr_celeba.txt").is_file():
            return place / "list_attr_celeba.txt"
        found = sorted(place.glob("list_attr_celeba*.txt"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(f"data.options.attributes: several attribute lists in {place} "
                             f"({', '.join(p.name for p in found)}); name one")
    raise FileNotFoundError(f"data.root: no list_attr_celeba*.txt in {' or '.join(map(str, places))}; "
                            "set data.options.attributes to its path")


def read_partition(attr_file: Path) -> dict[str, int] | None:
    """file -> 0/1/2 from an official list_eval_partition.txt beside the attribute list, if present."""
    path = attr_file.parent / "list_eval_partition.txt"
    if not path.is_file():
        return None
    return {f: int(p) for f, p in (line.split() for line in path.read_text().splitlines() if line.strip())}


def read_from_tar(tar_path: Path, files: list[str], decode_one: Callable[[bytes, str], np.ndarray]) -> list:
    """Decode ``files`` (matched by base name) from a tar archive, in order."""
    with tarfile.open(tar_path, "r:*") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        out = []
        for f in files:
            if f not in members:
                raise FileNotFoundError(f"{tar_path}: the archive has no image {f!r} listed in the attribute file")
            out.append(decode_one(tar.extractfile(members[f]).read(), f"{tar_path}:{f}"))
    return out


def read_from_folder(folder: Path, files: list[str], decode_one: Callable[[Path, str], np.ndarray]) -> list:
    """Decode ``files`` from ``folder`` (directly in it, or anywhere below it), in order."""
    index: dict[str, Path] | None = None
    out = []
    for f in files:
        path = folder / f
        if not path.is_file():
            if index is None:
                index = {p.name: p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
            if f not in index:
                raise FileNotFoundError(f"{folder}: no image {f!r} (listed in the attribute file) in this folder")
            path = index[f]
        out.append(decode_one(path, str(path)))
    return out


def image_source(root: Path) -> Path:
    """The tar or folder that holds the JPEGs: ``root`` itself, or the single .tar inside a folder
    that has no images of its own."""
    if root.is_file():
        return root
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in root.iterdir()):
        return root
    tars = sorted(p for p in root.iterdir() if p.name.endswith((".tar", ".tar.gz", ".tgz")))
    return tars[0] if len(tars) == 1 else root


def celeba_options(cfg: DataConfig) -> dict[str, Any]:
    """``data.options`` of a CelebA loader (crop, attributes, cache) with their defaults, checked."""
    opts = take_options(cfg, crop="center", attributes=None, cache=True)
    if not isinstance(opts["cache"], bool):
        raise ValueError(f"data.options.cache: expected true or false, got {opts['cache']!r}")
    return opts


def load_celeba(root: Path, cfg: DataConfig, opts: dict[str, Any], name: str = "celeba") -> ImageDataset:
    """CelebA from ``root`` (folder or tar) with ``opts`` (crop, attributes) already checked."""
    attr_file = find_attribute_file(root, opts["attributes"])
    files, names, values = read_attributes(attr_file)
    limit = check_limit(cfg.limit)
    files, values = files[:limit], values[:limit]
    if not files:
        raise ValueError(f"{attr_file}: the attribute list names no images")

    source = image_source(root)
    size = check_size(cfg.image_size) or (DEFAULT_SIZE if opts["crop"] not in (None, "none") else None)

    def decode_all() -> torch.Tensor:
        def decode_one(src: Any, where: str) -> np.ndarray:
            arr = decode(src, where, False)
            box = crop_box(opts["crop"], arr.shape[0], arr.shape[1], "data.options.crop")
            return arr if box is None else arr[box[0]:box[1], box[2]:box[3]]

        read = read_from_tar if source.is_file() else read_from_folder
        log.info("decoding %d CelebA images from %s", len(files), source)
        return stack(read(source, files, decode_one), files, size)

    key = {"source": source, "attributes": attr_file, "files": files, "crop": opts["crop"], "size": size}
    images = cached_images(name, key, decode_all, n=len(files)) if opts["cache"] else decode_all()
    split = None
    partition = read_partition(attr_file)
    if partition is not None:
        split = torch.tensor([2 if partition.get(f, 0) == 2 else 0 for f in files], dtype=torch.int8)
    return ImageDataset(name, images, attributes=torch.from_numpy(values), attribute_names=names, split=split)


def crop_preview(cfg: DataConfig, n: int = 4) -> tuple[list[np.ndarray], list[tuple[int, int, int, int] | None]]:
    """The first ``n`` source images of a ``celeba`` data config as decoded (H, W, 3) uint8 arrays, with
    the crop box (top, bottom, left, right) applied to each (None without a crop): what the loader keeps."""
    opts = celeba_options(cfg)
    root = require_root(cfg, "a folder or .tar of CelebA JPEGs")
    files = read_attributes(find_attribute_file(root, opts["attributes"]))[0][:n]
    source = image_source(root)
    read = read_from_tar if source.is_file() else read_from_folder
    originals = read(source, files, lambda src, where: decode(src, where, False))
    return originals, [crop_box(opts["crop"], a.shape[0], a.shape[1], "data.options.crop") for a in originals]


@DATASETS.register("celeba")
def celeba(cfg: DataConfig) -> ImageDataset:
    """CelebA: ``data.root`` is a folder or .tar of aligned JPEGs with list_attr_celeba*.txt beside it.
    Options: ``crop`` ('center' square (default), 'none' or [top, bottom, left, right]),
    ``attributes`` (path of the attribute list) and ``cache`` (keep the decoded images in the cache
    folder, default true).  With a crop, images are resized to 64 unless ``data.image_size`` says
    otherwise.  ``attributes``: int8 (N, 40) of 0/1."""
    opts = celeba_options(cfg)
    root = require_root(cfg, "a folder or .tar of CelebA JPEGs")
    return load_celeba(root, cfg, opts)
