"""load_dataset: the embedded MNIST, limit, resize, split determinism, fingerprints and option errors."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from latentatlas.config import DataConfig
from latentatlas.data import DATASETS, ImageDataset, dataset_fingerprint, limit_rows, load_dataset, resize_images


@pytest.fixture(scope="module")
def embedded():
    return load_dataset(DataConfig(), seed=0)


def test_embedded_mnist(embedded):
    ds = embedded
    assert ds.name == "mnist" and ds.images.shape == (5000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
    assert ds.class_names == [str(d) for d in range(10)]
    assert torch.bincount(ds.labels).tolist() == [500] * 10
    assert torch.bincount(ds.split.long()).tolist() == [4000, 500, 500]


def test_split_is_deterministic_and_seeded():
    cfg = DataConfig(name="mnist", limit=1000, val_fraction=0.2, test_fraction=0.1)
    a, b, c = (load_dataset(cfg, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.split, b.split) and not torch.equal(a.split, c.split)
    assert torch.bincount(a.split.long()).tolist() == [700, 200, 100]
    assert torch.equal(a.images, c.images)  # the limit keeps the same rows whatever the seed
    assert len(a.part("val")) == 200 and a.part("test").split.unique().tolist() == [2]


def test_limit_keeps_rows_spread_over_the_data_and_resize(embedded):
    ds = load_dataset(DataConfig(limit=10, image_size=14), seed=0)
    assert ds.images.shape == (10, 1, 14, 14) and ds.images.dtype == torch.uint8
    rows = limit_rows(len(embedded), 10)
    assert torch.equal(ds.labels, embedded.labels[rows]) and bool((rows[1:] > rows[:-1]).all())
    # the embedded digits are sorted by class: the first 400 rows are all zeros, a limit of 400 is not
    assert len(load_dataset(DataConfig(limit=400), seed=0).labels.unique()) == 10
    pil = np.stack([np.asarray(Image.fromarray(im[0].numpy()).resize((14, 14), Image.Resampling.BILINEAR))
                    for im in embedded.images[rows]])
    assert np.abs(pil.astype(int) - ds.images[:, 0].numpy().astype(int)).max() <= 1  # PIL's antialiased bilinear


def test_resize_closed_forms():
    flat = torch.full((2, 3, 9, 7), 77, dtype=torch.uint8)
    assert resize_images(flat, 5).unique().tolist() == [77]
    checker = torch.tensor([[0, 255] * 4, [255, 0] * 4] * 4, dtype=torch.uint8)[None, None]
    half = resize_images(checker, 4)  # the symmetric triangle filter averages a checkerboard to 127.5
    assert half.shape == (1, 1, 4, 4) and set(half[0, 0, 1:3, 1:3].flatten().tolist()) <= {127, 128}
    same = torch.randint(0, 256, (1, 1, 5, 5), dtype=torch.uint8)
    assert resize_images(same, 5) is same


def test_fingerprint_tracks_images_and_name():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 1, 3, 3), generator=g, dtype=torch.uint8)
    a = ImageDataset("a", x)
    fp = dataset_fingerprint(a)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert dataset_fingerprint(ImageDataset("a", x.clone())) == fp
    assert dataset_fingerprint(ImageDataset("b", x)) != fp
    y = x.clone()
    y[0, 0, 0, 0] ^= 1
    assert dataset_fingerprint(ImageDataset("a", y)) != fp
    assert dataset_fingerprint(ImageDataset("a", x.reshape(4, 1, 1, 9))) != fp


@pytest.mark.parametrize("field,value", [("limit", 0), ("limit", 2.5), ("image_size", -3)])
def test_bad_limit_and_size(field, value):
    with pytest.raises(ValueError, match=rf"data.{field}.*{value}"):
        load_dataset(DataConfig(**{field: value}), seed=0)


def test_unknown_name_option_and_missing_root(tmp_path):
    with pytest.raises(KeyError, match=r"unknown dataset 'mnsit'.*image-folder.*mnist"):
        load_dataset(DataConfig(name="mnsit"), seed=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'colour' for dataset 'mnist'"):
        load_dataset(DataConfig(options={"colour": True}), seed=0)
    with pytest.raises(FileNotFoundError, match=r"data.root.*nowhere; data.root=null reads the 5,000 digits"):
        load_dataset(DataConfig(root=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(FileNotFoundError, match=rf"no such file or folder: data/mnist \(relative to the current "
                                                rf"folder '{os.getcwd()}'\)"):
        load_dataset(DataConfig(root="data/mnist"), seed=0)
    for name in ("npz", "cifar10", "celeba", "image-folder"):
        with pytest.raises(ValueError, match=rf"data.root: dataset '{name}' needs data.root"):
            load_dataset(DataConfig(name=name), seed=0)
    with pytest.raises(ValueError, match=r"data.val_fraction \+ data.test_fraction: expected a sum below 1"):
        load_dataset(DataConfig(limit=10, val_fraction=0.5, test_fraction=0.5), seed=0)


def test_registry_lists_every_family():
    assert {"mnist", "idx", "npz", "image-folder", "celeba", "cifar10", "olivetti", "torchvision-mnist",
            "torchvision-fashion-mnist", "torchvision-cifar10", "torchvision-celeba"} <= set(DATASETS.names())


@pytest.mark.parametrize("name", ["torchvision-mnist", "torchvision-fashion-mnist", "torchvision-cifar10",
                                  "torchvision-celeba"])
def test_torchvision_missing_says_how_to_install(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(ImportError, match=r"pip install latentatlas\[vision\]"):
        load_dataset(DataConfig(name=name), seed=0)


class FakeMNIST:
    """Stands in for torchvision.datasets.MNIST: 'downloaded' only when download=True."""

    roots: list = []

    def __init__(self, root, download=False, train=True):
        FakeMNIST.roots.append(root)
        if not download:
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        n = 6 if train else 2
        self.data = torch.full((n, 28, 28), 9 if train else 1, dtype=torch.uint8)
        self.targets = torch.arange(n) % 3
        self.classes = ["zero", "one", "two"]


def test_torchvision_loader_with_a_stand_in(monkeypatch, isolated_cache):
    fake = type(sys)("torchvision")
    fake.datasets = type(sys)("torchvision.datasets")
    fake.datasets.MNIST = FakeMNIST
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    with pytest.raises(FileNotFoundError, match=r"torchvision-mnist.*set data.download=true"):
        load_dataset(DataConfig(name="torchvision-mnist"), seed=0)
    assert FakeMNIST.roots[-1] == str(isolated_cache / "torchvision")
    ds = load_dataset(DataConfig(name="torchvision-mnist", download=True), seed=0)
    assert ds.images.shape == (8, 1, 28, 28) and ds.class_names == ["zero", "one", "two"]
    assert ds.split[6:].tolist() == [2, 2] and ds.images[6:].unique().tolist() == [1]


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_loader_rejects_unknown_options(name):
    with pytest.raises(ValueError, match=rf"unknown option\(s\) 'bogus' for dataset '{name}'"):
        DATASETS.get(name)(DataConfig(name=name, options={"bogus": 1}))
