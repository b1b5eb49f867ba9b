"""The decoded-image cache: CelebA JPEGs are decoded once per (source, names, crop, size)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from latentatlas.data import celeba
from latentatlas.data.decoded_cache import cache_path
from latentatlas.fileio import default_cache_dir
from tests.data.test_files import build, write_celeba


def entries() -> list:
    return sorted((default_cache_dir() / "datasets").glob("*.npy"))


@pytest.fixture
def tar_root(tmp_path):
    return write_celeba(tmp_path / "faces", n=6, as_tar=True)


def test_second_load_reads_the_cache_not_the_tar(tar_root, monkeypatch):
    first = build("celeba", tar_root, limit=5)
    assert len(entries()) == 1
    monkeypatch.setattr(celeba, "read_from_tar", lambda *a, **k: pytest.fail("the tar was decoded again"))
    second = build("celeba", tar_root, limit=5)
    assert torch.equal(first.images, second.images) and second.images.shape == (5, 3, 64, 64)
    assert torch.equal(first.attributes, second.attributes)
    second.images[0] += 1                      # copy-on-write: the cache file is not changed
    assert torch.equal(build("celeba", tar_root, limit=5).images, first.images)


def test_crop_size_names_and_source_are_keys(tar_root):
    base = build("celeba", tar_root, limit=5)
    build("celeba", tar_root, limit=5, image_size=32)
    build("celeba", tar_root, limit=5, options={"crop": "none"})
    build("celeba", tar_root, limit=4)
    assert len(entries()) == 4
    stat = tar_root.stat()
    os.utime(tar_root, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))   # the tar replaced: decode again
    again = build("celeba", tar_root, limit=5)
    assert len(entries()) == 5 and torch.equal(again.images, base.images)


def test_a_damaged_entry_is_decoded_again(tar_root):
    good = build("celeba", tar_root, limit=3)
    path = entries()[0]
    path.write_bytes(path.read_bytes()[:100])
    assert torch.equal(build("celeba", tar_root, limit=3).images, good.images)
    np.save(path, np.zeros((2, 3, 64, 64), np.uint8))          # wrong row count: not trusted
    assert torch.equal(build("celeba", tar_root, limit=3).images, good.images)
    assert np.load(path).shape == (3, 3, 64, 64)


def test_cache_false_writes_nothing_and_bad_value_is_named(tar_root):
    build("celeba", tar_root, limit=2, options={"cache": False})
    assert entries() == []
    with pytest.raises(ValueError, match=r"data.options.cache: expected true or false, got 'yes'"):
        build("celeba", tar_root, options={"cache": "yes"})


def test_cache_path_lies_in_the_cache_folder(tar_root):
    path = cache_path("celeba", {"source": tar_root, "crop": "center", "size": 64})
    assert path.parent == default_cache_dir() / "datasets" and path.name.startswith("celeba-")
