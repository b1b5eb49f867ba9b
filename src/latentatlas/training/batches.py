"""The training data on the training device: each split as (uint8 images (N, C, H, W), long labels (N,) or
None), checked against the model, and float batches of its rows."""

from __future__ import annotations

import logging

import torch
from torch import nn

from latentatlas.data.base import ImageDataset, mirror, to_float
from latentatlas.rng import to_device

log = logging.getLogger(__name__)


def batch_rows(part: tuple[torch.Tensor, torch.Tensor | None], index: torch.Tensor,
               flip: torch.Tensor | None = None):
    """Float images and labels (or None) of rows ``index`` (B,) of a (uint8 images, labels) pair, the rows
    where ``flip`` (B,) bool (on any device) is True mirrored left-right."""
    images, labels = part
    x = to_float(images[index])
    x = x if flip is None else mirror(x, to_device(flip, x.device))
    return x, (labels[index] if labels is not None else None)


def device_parts(data: ImageDataset, model: nn.Module, device: torch.device):
    """(uint8 images, labels or None) of the train and val splits on ``device``, after checking the
    dataset against the model; labels only for conditional models."""
    if not isinstance(data, ImageDataset):
        raise TypeError(f"data: expected an ImageDataset, got {type(data).__name__}")
    if data.split is None:
        raise ValueError(f"data: {data.name} has no split assigned; call assign_split first")
    if tuple(data.image_shape) != tuple(model.image_shape):
        raise ValueError(f"data: image shape {tuple(data.image_shape)} does not match the model's "
                         f"{tuple(model.image_shape)}")
    train, val = data.part("train"), data.part("val")
    if len(train) == 0:
        raise ValueError(f"data: {data.name} has no training rows")
    if len(val) == 0 and model.selection_metric == "val_loss":
        log.warning("data: no validation rows; model selection and early stopping use the training loss")
    wants_labels = getattr(model, "uses_labels", False)
    if wants_labels and data.labels is None:
        raise ValueError(f"data: the {model.config.family!r} model needs class labels; {data.name} has none")
    classes = getattr(model, "n_classes", None)
    if wants_labels and classes and len(data.labels):
        low, high = (int(v) for v in torch.aminmax(data.labels))
        if low < 0 or high >= classes:
            raise ValueError(f"data: {data.name}'s labels must lie in [0, {classes}) for the model, got {low}..{high}")

    def pair(part: ImageDataset):
        return part.images.to(device), (part.labels.long().to(device) if wants_labels else None)

    return pair(train), pair(val)
