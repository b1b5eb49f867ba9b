"""Feature extraction, float64 streaming statistics, the reference cache and the classifier extractor."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from latentatlas.data.base import ImageDataset
from latentatlas.metrics.classifier import load_classifier
from latentatlas.metrics.features import (RunningStats, build_extractor, extract_features, features_to_stats,
                                          load_reference_npz, reference_stats, stats_key)


def test_running_stats_match_numpy_and_ignore_batching():
    x = torch.randn(1000, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5 + 100
    mu, sigma = features_to_stats(x)
    np.testing.assert_allclose(mu.numpy(), x.numpy().mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x.numpy(), rowvar=False), rtol=1e-10)
    for sizes in ([1, 999], [7] * 142 + [6], [500, 500]):
        rs = RunningStats()
        for part in torch.split(x, sizes):
            rs.update(part)
        m2, s2 = rs.result()
        np.testing.assert_allclose(m2.numpy(), mu.numpy(), rtol=1e-12)
        np.testing.assert_allclose(s2.numpy(), sigma.numpy(), rtol=1e-10, atol=1e-12)


def test_running_stats_need_two_rows():
    with pytest.raises(ValueError, match="at least 2"):
        RunningStats().update(torch.zeros(1, 3)).result()


def test_extract_features_independent_of_batch_size(mnist_train):
    images = mnist_train.images[:100]
    for name in ("pixels", "classifier"):
        ext = build_extractor(name, dataset=mnist_train.subset(torch.arange(300)))
        a = extract_features(ext, images, batch_size=100)
        b = extract_features(ext, images, batch_size=7)
        assert a.dtype == torch.float64 and a.shape[0] == 100
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pixels_and_user_module():
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    f = extract_features(build_extractor("pixels"), images)
    torch.testing.assert_close(f, images.flatten(1).double() / 255, rtol=0, atol=1e-7)
    ext = build_extractor(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(72, 3)))
    assert ext.name.startswith("module:") and len(ext.weights_hash) == 16
    assert extract_features(ext, images).shape == (5, 3)


def test_extractor_validation():
    with pytest.raises(KeyError, match="pixels"):
        build_extractor("no-such-net")
    with pytest.raises(TypeError, match="extractor"):
        build_extractor(3)
    with pytest.raises(ValueError, match="uint8"):
        extract_features(build_extractor("pixels"), torch.zeros(2, 1, 4, 4))


def test_classifier_needs_labels(mnist_train):
    unlabelled = ImageDataset("nolabels", mnist_train.images[:50])
    with pytest.raises(ValueError, match="pixels"):
        build_extractor("classifier", dataset=unlabelled)


def test_classifier_is_trained_once_cached_and_learns(mnist_train, isolated_cache):
    ds = mnist_train.subset(torch.arange(1200))
    ext = build_extractor("classifier", dataset=ds)
    files = sorted((isolated_cache / "classifiers").iterdir())
    assert [f.suffix for f in files] == [".json", ".pt"]
    protocol = json.loads(files[0].read_text())
    assert protocol["heldout_accuracy"] > 0.6 and protocol["train_accuracy"] > 0.6   # 10 classes: chance 0.1
    again = build_extractor("classifier", dataset=ds)          # from the cache, same weights
    assert again.weights_hash == ext.weights_hash
    assert load_classifier(files[1]).weights_hash == ext.weights_hash
    f, logits = extract_features(ext, ds.images[:20], logits=True)
    assert f.shape == (20, 128) and logits.shape == (20, 10)


def test_classifier_works_for_rgb_64px():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    images = (torch.rand(60, 3, 64, 64, generator=g) * 60 + labels.view(-1, 1, 1, 1) * 80).to(torch.uint8)
    ext = build_extractor("classifier", dataset=ImageDataset("rgb", images, labels))
    assert extract_features(ext, images[:4]).shape == (4, 128)


def test_reference_cache_key_and_atomic_file(mnist_test, isolated_cache):
    ext = build_extractor("pixels")
    ref = reference_stats(mnist_test, ext, split="test", n=200)
    files = list((isolated_cache / "stats").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"            # no temporary file left behind
    again = reference_stats(mnist_test, ext, split="test", n=200)
    torch.testing.assert_close(again.sigma, ref.sigma)
    torch.testing.assert_close(again.features, ref.features)
    base = dict(ref.protocol)
    keys = {stats_key(base)}
    for change in ({"split": "val"}, {"count": 201}, {"extractor": "classifier"}, {"weights_hash": "x"},
                   {"transform": "resize32"}, {"fingerprint": "other"}, {"dataset": "cifar10"}):
        keys.add(stats_key({**base, **change}))
    assert len(keys) == 8                                           # every ingredient changes the key
    reference_stats(mnist_test, ext, split="test", n=300)           # another count: another file
    assert len(list((isolated_cache / "stats").iterdir())) == 2


def test_load_reference_npz(tmp_path):
    path = tmp_path / "ref.npz"
    np.savez(path, mu=np.zeros(3), sigma=np.eye(3))
    mu, sigma = load_reference_npz(path)
    assert mu.dtype == torch.float64 and sigma.shape == (3, 3)
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ValueError, match="mu"):
        load_reference_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        load_reference_npz(tmp_path / "missing.npz")
