"""The real data sets in ../shared/data (skipped when the folder is absent)."""

from __future__ import annotations

import torch

from latentatlas.config import DataConfig
from latentatlas.data import load_dataset

# Published MNIST class counts (LeCun et al.): train and t10k.
MNIST_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_full_mnist_from_idx(shared_data):
    ds = load_dataset(DataConfig(name="mnist", root=str(shared_data / "mnist")), seed=0)
    assert ds.images.shape == (70000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.bincount(ds.split.long()).tolist() == [54000, 6000, 10000]
    assert torch.bincount(ds.labels[:60000]).tolist() == MNIST_TRAIN
    assert torch.bincount(ds.part("test").labels).tolist() == MNIST_TEST
    # the README: the embedded digits are the first 500 train images of each digit
    embedded = load_dataset(DataConfig(), seed=0)
    for d in (0, 7):
        first = torch.nonzero(ds.labels[:60000] == d).flatten()[:500]
        assert torch.equal(embedded.images[embedded.labels == d], ds.images[first])


def test_cifar10_subset(shared_data):
    ds = load_dataset(DataConfig(name="cifar10", root=str(shared_data / "cifar10_subset")), seed=0)
    assert ds.images.shape == (5000, 3, 32, 32)
    assert ds.class_names[:3] == ["airplane", "automobile", "bird"] and len(ds.class_names) == 10
    assert (ds.split[4000:] == 2).all() and not (ds.split[:4000] == 2).any()
    assert int(ds.labels.max()) == 9


def test_celeba_10k_from_tar(shared_data):
    folder = shared_data / "celeba_10k"
    ds = load_dataset(DataConfig(name="celeba", root=str(folder / "img_align_celeba_89x109.tar"), limit=50), seed=0)
    assert ds.images.shape == (50, 3, 64, 64) and ds.attributes.shape == (50, 40)
    assert ds.attributes.dtype == torch.int8 and set(ds.attributes.unique().tolist()) == {0, 1}
    assert "Smiling" in ds.attribute_names and len(ds.attribute_names) == 40
    first = (folder / "list_attr_celeba_10k.txt").read_text().splitlines()[2].split()
    assert first[0] == "000001.jpg"
    assert ds.attributes[0].tolist() == [int(v == "1") for v in first[1:]]
    again = load_dataset(DataConfig(name="celeba", root=str(folder), limit=5), seed=0)  # folder holding the tar
    assert torch.equal(again.images, ds.images[:5])


def test_olivetti(shared_data):
    ds = load_dataset(DataConfig(name="olivetti", root=str(shared_data / "olivetti_faces")), seed=0)
    assert ds.images.shape == (400, 1, 64, 64) and torch.bincount(ds.labels).tolist() == [10] * 40
