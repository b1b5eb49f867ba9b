"""The one in-memory dataset type every loader returns, and the deterministic split.

Value range and layout (the only one in latentatlas): images are stored as ``uint8`` tensors of shape
(N, C, H, W) and handed to models as ``float32`` in [0, 1] via :func:`to_float`.  Samples written to
disk are ``uint8`` (N, H, W, C) (:func:`to_uint8_nhwc`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from latentatlas.config import SPLITS
from latentatlas.rng import make_generator


@dataclass
class ImageDataset:
    """Images with their labels and attributes.

    images: uint8 (N, C, H, W).  labels: int64 (N,) or None.  attributes: int8 (N, A) of 0/1 or None,
    with ``attribute_names`` of length A.  ``split``: int8 (N,) of indices into :data:`SPLITS`, or None
    when the source defines no split (then :func:`assign_split` makes one from the seed).
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor | None = None
    attributes: torch.Tensor | None = None
    attribute_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    split: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images: expected uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n = self.images.shape[0]
        for key in ("labels", "attributes", "split"):
            value = getattr(self, key)
            if value is not None and value.shape[0] != n:
                raise ValueError(f"{self.name}: {key} has {value.shape[0]} rows but there are {n} images")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def n_classes(self) -> int | None:
        """Number of classes (``len(class_names)``, else the largest label + 1); None without labels."""
        if self.labels is None:
            return None
        top = int(self.labels.max()) + 1 if len(self.labels) else 0
        return max(len(self.class_names), top)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: torch.Tensor | np.ndarray) -> "ImageDataset":
        index = torch.as_tensor(index, dtype=torch.long)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return ImageDataset(self.name, self.images[index], pick(self.labels), pick(self.attributes),
                            list(self.attribute_names), list(self.class_names), pick(self.split))

    def part(self, split: str) -> "ImageDataset":
        """The rows of one split ('train', 'val' or 'test')."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
        if self.split is None:
            raise ValueError(f"{self.name}: no split assigned; call assign_split first")
        return self.subset(torch.nonzero(self.split == SPLITS.index(split)).flatten())


def assign_split(ds: ImageDataset, *, seed: int, val_fraction: float, test_fraction: float) -> ImageDataset:
    """Give every row a split.  Rows with a source-defined split keep 'test'; the rest are shuffled
    with ``seed`` and cut into train / val (and test, when the source defines none).  Deterministic."""
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"data.{name}: expected a fraction in [0, 1), got {frac!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"data.val_fraction + data.test_fraction: expected a sum below 1 (some images left to "
                         f"train on), got {val_fraction} + {test_fraction}")
    n = len(ds)
    split = torch.zeros(n, dtype=torch.int8)
    g = make_generator(seed)
    if ds.split is not None and bool((ds.split == 2).any()):
        test_rows = torch.nonzero(ds.split == 2).flatten()
        split[test_rows] = 2
        free = torch.nonzero(ds.split != 2).flatten()
        free = free[torch.randperm(free.numel(), generator=g)]
        n_val = int(round(val_fraction * free.numel()))
        split[free[:n_val]] = 1
    else:
        order = torch.randperm(n, generator=g)
        n_test = int(round(test_fraction * n))
        n_val = int(round(val_fraction * n))
        split[order[:n_test]] = 2
        split[order[n_test:n_test + n_val]] = 1
    ds.split = split
    return ds


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1], same shape."""
    if images.dtype != torch.uint8:
        raise ValueError(f"images: expected uint8 (N, C, H, W), got {images.dtype}")
    return images.to(torch.float32).div_(255.0)


def mirror(images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """images (B, C, H, W) with the rows where ``which`` (B,) bool is True mirrored left-right."""
    return torch.where(which.view(-1, 1, 1, 1), images.flip(3), images)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (N, C, H, W) in [0, 1] -> uint8 tensor (N, C, H, W), rounding and clipping, on the CPU."""
    return x.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8).cpu()


def to_uint8_nhwc(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [0, 1] -> uint8 numpy (N, H, W, C), rounding and clipping."""
    return to_uint8(x).permute(0, 2, 3, 1).numpy()


def from_uint8_nhwc(arr: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) or (N, H, W) numpy -> uint8 tensor (N, C, H, W)."""
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"arr_0: expected uint8 images, got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise ValueError(f"arr_0: expected shape (N, H, W, C) or (N, H, W), got {arr.shape}")
    if arr.shape[1] in (1, 3) and min(arr.shape[2:]) > 4:   # (N, 1 or 3, H, W): not images of 1 or 3 rows
        raise ValueError(f"arr_0: expected channels last (N, H, W, C), got {arr.shape}, which looks like channels "
                         "first (N, C, H, W): save np.transpose(images, (0, 2, 3, 1))")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))


def dataset_fingerprint(ds: ImageDataset) -> str:
    """Short identity of a dataset's images: the first 16 hex digits of the sha256 of its name, image
    shape and image bytes.  Same images, same fingerprint (used to key cached reference statistics)."""
    import hashlib

    h = hashlib.sha256()
    h.update(f"{ds.name}|{tuple(ds.images.shape)}|".encode())
    h.update(memoryview(np.ascontiguousarray(ds.images.cpu().numpy())).cast("B"))
    return h.hexdigest()[:16]
