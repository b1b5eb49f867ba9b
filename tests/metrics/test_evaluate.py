"""evaluate_samples / evaluate_file: scores, protocol, metric registry, references by spec or .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from latentatlas.data.base import to_uint8_nhwc
from latentatlas.metrics.evaluate import METRICS, evaluate_file, evaluate_samples, load_samples


def noise_like(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(images.shape, generator=g) * 255).to(torch.uint8)


def test_registry_names():
    assert {"frechet", "kid", "prdc", "is", "memorization"} <= set(METRICS.names())


def test_protocol_and_ordering_with_a_user_module(mnist_train, mnist_test):
    """A user-supplied module (4x4 average pooling: 49 features) as the extractor."""
    pool = nn.Sequential(nn.AvgPool2d(4), nn.Flatten())
    real = mnist_test.subset(torch.arange(300))
    good = mnist_test.images[300:600]
    out = evaluate_samples(good, real, extractor=pool, train=mnist_train, seed=5)
    bad = evaluate_samples(noise_like(good), real, extractor=pool, train=mnist_train, seed=5,
                           metrics=("frechet", "kid", "prdc"))
    p = out["protocol"]
    assert p["extractor"] == "module:Sequential" and len(p["weights_hash"]) == 16 and p["seed"] == 5
    assert p["n_real"] == 300 and p["n_fake"] == 300 and p["real_split"] == "test" and p["n_train"] == 1500
    assert p["k_precision_recall"] == 3 and p["k_density_coverage"] == 5
    assert "is" in out["skipped"]                                   # no logits
    assert out["frechet"] < bad["frechet"] and out["kid"] < bad["kid"]
    assert out["precision"] > bad["precision"] and out["recall"] > bad["recall"]
    assert out["data_copying_z"] > -3                               # real test digits do not copy train
    assert json.loads(json.dumps(out)) == out                       # plain JSON for `--json`


def test_pixels_extractor_frechet_and_prdc(mnist_test):
    real = mnist_test.subset(torch.arange(200))
    out = evaluate_samples(mnist_test.images[300:400], real, extractor="pixels", metrics=("frechet", "prdc"))
    assert out["protocol"]["extractor"] == "pixels" and out["protocol"]["weights_hash"] == "none"
    assert out["frechet"] > 0 and 0 < out["precision"] <= 1


def test_prdc_on_a_reference_of_too_few_images_is_skipped_with_its_reason(mnist_test):
    """k nearest neighbours need more than k real images: a skipped metric with the reason, not an error."""
    real = mnist_test.subset(torch.arange(4))
    out = evaluate_samples(mnist_test.images[300:340], real, extractor="pixels", metrics=("frechet", "prdc"))
    assert "precision" not in out and out["frechet"] > 0
    assert "more than 5 real images" in out["skipped"]["prdc"] and "has 4" in out["skipped"]["prdc"]


def test_classifier_scores_and_is(mnist_train, mnist_test):
    real = mnist_test.subset(torch.arange(300))
    train = mnist_train.subset(torch.arange(1000))
    out = evaluate_samples(mnist_test.images[300:600], real, train=train, metrics=("frechet", "is"))
    assert out["protocol"]["extractor"] == "classifier" and len(out["protocol"]["weights_hash"]) == 16
    assert out["is"] > 2.5                                          # real digits: confident, varied
    noise = evaluate_samples(noise_like(mnist_test.images[:300]), real, train=train, metrics=("is",))
    assert noise["is"] < out["is"] and noise["protocol"]["weights_hash"] == out["protocol"]["weights_hash"]
    assert out["frechet"] >= 0


def test_statistics_only_reference(tmp_path, mnist_test):
    from latentatlas.metrics.features import build_extractor, reference_stats

    ref = reference_stats(mnist_test, build_extractor("pixels"), split="test")
    np.savez(tmp_path / "ref.npz", mu=ref.mu.numpy(), sigma=ref.sigma.numpy())
    fake = mnist_test.images[:200]
    out = evaluate_samples(fake, tmp_path / "ref.npz", extractor="pixels", metrics=("frechet", "prdc"))
    assert out["frechet"] > 0 and "prdc" in out["skipped"]


def test_validation(mnist_test):
    with pytest.raises(KeyError, match="frechet"):
        evaluate_samples(mnist_test.images[:10], mnist_test, metrics=("nope",))
    with pytest.raises(ValueError, match="fake"):
        evaluate_samples(mnist_test.images[:10].float(), mnist_test, extractor="pixels")
    with pytest.raises(ValueError, match="shape"):
        evaluate_samples(torch.zeros(4, 3, 28, 28, dtype=torch.uint8), mnist_test, extractor="pixels")


def test_evaluate_file_any_samples_npz(tmp_path, mnist):
    from latentatlas.data.base import to_float

    fake = mnist.part("test").images[:200]
    path = tmp_path / "samples.npz"
    np.savez(path, arr_0=to_uint8_nhwc(to_float(fake)))
    assert torch.equal(load_samples(path), fake)
    out = evaluate_file(path, "mnist:test", extractor="pixels", metrics=("frechet", "prdc"))
    assert out["protocol"]["real_split"] == "mnist:test" and out["protocol"]["samples"] == str(path)
    assert out["precision"] > 0.5
    with pytest.raises(ValueError, match="arr_0"):
        np.savez(tmp_path / "bad.npz", images=np.zeros((2, 4, 4, 1), np.uint8))
        load_samples(tmp_path / "bad.npz")


def test_prdc_reference_radii_computed_once_and_cached(tmp_path, mnist_test):
    """evaluate_samples reuses the reference's k-NN radii (memory, then disk) with unchanged scores."""
    from latentatlas.metrics.features import (build_extractor, extract_features, reference_prdc_radii,
                                              reference_stats)
    from latentatlas.metrics.prdc import prdc

    real = mnist_test.subset(torch.arange(200))
    pix = build_extractor("pixels")
    fakes = [mnist_test.images[300:400], noise_like(mnist_test.images[:100])]
    ref = reference_stats(real, pix, split="test", cache_dir=tmp_path)
    for fake in fakes:
        out = evaluate_samples(fake, ref, extractor="pixels", metrics=("prdc",), cache_dir=tmp_path)
        cold = prdc(ref.features, extract_features(pix, fake), 3, k_dc=5)
        assert {m: out[m] for m in cold} == cold
    assert list(ref.prdc_radii) == [(3, 5)]
    cached = list((tmp_path / "stats").glob("*.prdc.npz"))
    assert len(cached) == 1
    again = reference_stats(real, pix, split="test", cache_dir=tmp_path)    # fresh Reference: from disk
    assert torch.equal(reference_prdc_radii(again, 3, 5, cache_dir=tmp_path), ref.prdc_radii[(3, 5)])
    reference_prdc_radii(again, 3, 4, cache_dir=tmp_path)                   # other k: another file
    assert len(list((tmp_path / "stats").glob("*.prdc.npz"))) == 2


def test_a_reference_dataset_takes_data_settings_from_ref_set(tmp_path, mnist, capsys):
    """An npz reference with its own array names: ``--ref-set options.x_key=pics``; the scores equal those
    against the same rows loaded through a data config."""
    from latentatlas.cli import main
    from latentatlas.config import DataConfig
    from latentatlas.data import load_dataset

    images = mnist.images[:400].permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "ref.npz", pics=images)
    np.savez(tmp_path / "samples.npz", arr_0=images[:120])
    args = ["evaluate", str(tmp_path / "samples.npz"), "--ref", "npz:test", "--ref-root", str(tmp_path / "ref.npz"),
            "--extractor", "pixels", "--json"]
    assert main([*args, "--ref-set", "options.x_key=pics"]) == 0
    out = json.loads(capsys.readouterr().out)
    real = load_dataset(DataConfig(name="npz", root=str(tmp_path / "ref.npz"), options={"x_key": "pics"}), seed=0)
    direct = evaluate_samples(torch.from_numpy(images[:120]).permute(0, 3, 1, 2), real.part("test"),
                              extractor="pixels", train=real.part("train"), metrics=("frechet",))
    assert out["frechet"] == pytest.approx(direct["frechet"], rel=1e-9)
    assert out["protocol"]["n_real"] == len(real.part("test"))
    assert main([*args, "--ref-set", "colour=1"]) == 2
    assert "--ref-set: unknown key(s) ['colour']" in capsys.readouterr().err
    assert main([*args, "--ref-set", "options.x_key=nothing"]) == 2
    assert "nothing" in capsys.readouterr().err


def test_frechet_infinity_metric_and_its_protocol(mnist_test):
    """Test digits against other test digits: FD-infinity takes off most of the 300-image distance's bias;
    with too few images for the feature dimension the metric is skipped with the reason."""
    pool = nn.Sequential(nn.AvgPool2d(7), nn.Flatten())           # 16 features
    real = mnist_test.subset(torch.arange(200))
    out = evaluate_samples(mnist_test.images[200:600], real, extractor=pool, metrics=("frechet", "frechet_inf"))
    noise = evaluate_samples(noise_like(mnist_test.images[:400]), real, extractor=pool,
                             metrics=("frechet", "frechet_inf"))
    assert out["protocol"]["frechet_inf_sizes"] == "40-400 images, 15 sizes"
    assert out["frechet_inf"] < 0.5 * out["frechet"] and out["frechet_inf_slope"] > 0
    assert noise["frechet_inf"] > 10 * out["frechet"]
    few = evaluate_samples(mnist_test.images[200:240], real, extractor=pool, metrics=("frechet_inf",))
    assert "frechet_inf" not in few and "needs at least 64 images for 16-d" in few["skipped"]["frechet_inf"]
