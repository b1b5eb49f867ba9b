"""The celeba-attributes extractor on synthetic faces whose attributes are a known function of the pixels
(attribute j: a bright patch in horizontal band j): it learns them (held-out AUCs as scikit-learn computes
them), is cached and reused, retrained when its cache entry is damaged, judges attribute coverage in
``evaluate_samples``, where IS and class coverage are skipped for it."""

from __future__ import annotations

import functools
import json

import pytest
import torch
from sklearn.metrics import roc_auc_score

from latentatlas.data.base import ImageDataset
from latentatlas.metrics import attribute_net
from latentatlas.metrics.attribute_net import AttributeNet, load_attribute_net, load_or_train_attribute_net
from latentatlas.metrics.cached_net import heldout_split
from latentatlas.metrics.evaluate import DEFAULT_METRICS, evaluate_samples
from latentatlas.metrics.features import EXTRACTORS, build_extractor, default_extractor, extract_features
from latentatlas.rng import make_generator

NAMES = ["Band_0", "Band_1", "Band_2", "Band_3"]   # the attributes of the banded_faces fixture
EPOCHS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory, banded_faces):
    """(dataset, net, cache folder): the net trained once on 300 banded faces."""
    cache = tmp_path_factory.mktemp("attr-cache")
    ds = banded_faces(300, seed=0)
    return ds, load_or_train_attribute_net(ds, cache_dir=cache, epochs=EPOCHS), cache


def test_learns_the_attributes_and_the_protocol_has_sklearn_aucs(trained):
    ds, net, _ = trained
    p = net.protocol
    held, train = heldout_split(len(ds), 0.1, make_generator(0))
    assert p["n_heldout"] == len(held) == 30 and p["n_train"] == len(train) == 270
    assert p["attribute_names"] == NAMES and p["epochs"] == EPOCHS and p["seed"] == 0
    assert p["image_shape"] == [3, 32, 32]
    with torch.no_grad():
        logits = net.attribute_logits(ds.images[held].float() / 255)
    for j, name in enumerate(NAMES):
        expected = roc_auc_score(ds.attributes[held, j].numpy(), logits[:, j].numpy())
        assert p["heldout_aucs"][name] == pytest.approx(expected, abs=1e-4)
        assert expected > 0.9
    assert p["heldout_mean_auc"] == pytest.approx(sum(p["heldout_aucs"].values()) / 4, abs=1e-4)


def test_interface(trained):
    ds, net, _ = trained
    x = ds.images[:5].float() / 255
    assert net.name == "celeba-attributes" and len(net.weights_hash) == 16 and net.attribute_names == NAMES
    assert not hasattr(net, "features_and_logits")              # evaluate must not compute IS / classes
    with torch.no_grad():
        f = net(x)
        assert f.shape == (5, 256) and bool((f >= 0).all())      # after ReLU
        torch.testing.assert_close(net.attribute_logits(x), net.head(f))
        torch.testing.assert_close(net.attribute_probs(x), torch.sigmoid(net.head(f)))
    for h, w in ((16, 16), (64, 64), (24, 40)):                 # any size from 16 up
        assert AttributeNet(3, NAMES).eval()(torch.rand(2, 3, h, w)).shape == (2, 256)


def test_cached_and_reused_without_training(trained, monkeypatch):
    ds, net, cache = trained
    files = sorted((cache / "attribute_nets").iterdir())
    assert [f.suffix for f in files] == [".json", ".pt"] and files[0].name.startswith("banded-")
    assert json.loads(files[0].read_text())["fingerprint"] == net.protocol["fingerprint"]

    def no_training(*_, **__):
        raise AssertionError("trained again although cached")

    monkeypatch.setattr(attribute_net, "train_attribute_net", no_training)
    again = load_or_train_attribute_net(ds, cache_dir=cache, epochs=EPOCHS)
    assert again.weights_hash == net.weights_hash
    assert load_attribute_net(files[1]).weights_hash == net.weights_hash              # weights= a cached file
    assert build_extractor("celeba-attributes", dataset=ds, cache_dir=cache, weights=str(files[1])).weights_hash \
        == net.weights_hash


def test_evaluate_judges_attribute_coverage_and_skips_is_and_classes(trained, banded_faces):
    train, net, cache = trained
    real = banded_faces(80, seed=3)
    fake = banded_faces(60, seed=4, probs=(0.0, 0.4, 0.9, 0.6))        # Band_0 never, Band_2 too often
    weights = str(next((cache / "attribute_nets").glob("*.pt")))
    out = evaluate_samples(fake.images, real, train=train, extractor="celeba-attributes", weights=weights,
                           metrics=DEFAULT_METRICS)
    assert out["protocol"]["weights_hash"] == net.weights_hash
    assert set(out["skipped"]) == {"is", "classes"} and "celeba-attributes" in out["skipped"]["is"]
    rates = out["attribute_rates"]
    real_rate, fake_rate = real.attributes.double().mean(0), fake.attributes.double().mean(0)
    assert rates["names"] == NAMES and rates["labelled"] == pytest.approx(real_rate.tolist(), abs=1e-5)
    assert rates["real"] == pytest.approx(real_rate.tolist(), abs=0.03)      # the net judges these faces right
    assert rates["samples"] == pytest.approx(fake_rate.tolist(), abs=0.03)
    assert out["attributes_missing"] == 1
    assert out["attribute_gap"] == pytest.approx(float((fake_rate - real_rate).abs().mean()), abs=0.02)


def test_attribute_coverage_uses_the_attribute_net_when_another_network_gives_the_frechet_distance(
        trained, banded_faces, monkeypatch):
    train, net, cache = trained
    monkeypatch.setattr(attribute_net, "load_or_train_attribute_net",        # the test's epochs: found in cache
                        functools.partial(load_or_train_attribute_net, epochs=EPOCHS))
    real = banded_faces(80, seed=3)
    fake = banded_faces(60, seed=4, probs=(0.0, 0.4, 0.9, 0.6))
    out = evaluate_samples(fake.images, real, train=train, extractor="pixels", cache_dir=cache,
                           metrics=("attributes",))
    p = out["protocol"]
    assert p["extractor"] == "pixels" and p["attribute_extractor"] == "celeba-attributes"
    assert p["attribute_weights_hash"] == net.weights_hash
    real_rate, fake_rate = real.attributes.double().mean(0), fake.attributes.double().mean(0)
    assert out["attribute_rates"]["samples"] == pytest.approx(fake_rate.tolist(), abs=0.03)
    assert out["attribute_rates"]["real"] == pytest.approx(real_rate.tolist(), abs=0.03)
    assert out["attributes_missing"] == 1


@pytest.mark.parametrize("damage", ["weights", "protocol"])
def test_a_damaged_cache_entry_is_trained_again(damage, tmp_path, monkeypatch, banded_faces):
    ds = banded_faces(60, seed=1, side=16)
    first = load_or_train_attribute_net(ds, cache_dir=tmp_path, epochs=1)
    pt = next((tmp_path / "attribute_nets").glob("*.pt"))
    target = pt if damage == "weights" else pt.with_suffix(".json")
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])   # truncated
    calls = []
    real_train = attribute_net.train_attribute_net
    monkeypatch.setattr(attribute_net, "train_attribute_net", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    again = load_or_train_attribute_net(ds, cache_dir=tmp_path, epochs=1)
    assert calls == [1] and again.weights_hash == first.weights_hash                  # seeded: the same net
    assert load_attribute_net(pt).weights_hash == first.weights_hash                  # the entry is whole again


def test_clear_errors(banded_faces):
    no_attributes = ImageDataset("digits", torch.zeros(40, 1, 28, 28, dtype=torch.uint8), labels=torch.zeros(40))
    with pytest.raises(ValueError, match="celeba-attributes.*classifier"):
        build_extractor("celeba-attributes", dataset=no_attributes)
    with pytest.raises(ValueError, match="at least 16x16"):
        build_extractor("celeba-attributes", dataset=banded_faces(40, seed=0, side=12))
    with pytest.raises(ValueError, match="dataset="):
        build_extractor("celeba-attributes")


def test_auto_picks_by_what_the_data_has(monkeypatch, tmp_path, banded_faces):
    faces = banded_faces(40, seed=0, side=16)
    digits = ImageDataset("digits", faces.images, labels=torch.zeros(40, dtype=torch.long))
    plain = ImageDataset("plain", faces.images)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))                             # no Inception weights
    assert [default_extractor(d) for d in (digits, faces, plain, None)] == \
        ["classifier", "celeba-attributes", "pixels", "pixels"]
    weights = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    assert [default_extractor(d) for d in (digits, faces, plain)] == ["classifier", "inception", "inception"]
    assert "auto" in EXTRACTORS.names()
    weights.unlink()
    ext = build_extractor("auto", dataset=plain)
    assert ext.name == "pixels" and extract_features(ext, plain.images[:2]).shape == (2, 3 * 16 * 16)
