"""Checkpoint round trip, weights_only loading, atomic writes and errors."""

from __future__ import annotations

import pytest
import torch

from latentatlas.training.checkpoint import load_checkpoint, load_model, model_payload, save_checkpoint, save_model

from .helpers import tiny_model


def test_round_trip_rebuilds_the_same_model(tmp_path):
    model = tiny_model("vae", shape=(1, 6, 6)).eval()
    path = save_model(tmp_path / "ckpt" / "model.pt", model)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == 2 and raw["image_shape"] == [1, 6, 6] and raw["n_classes"] is None
    assert raw["model_config"]["family"] == "vae" and raw["model_config"]["latent_dim"] == 2
    loaded = load_model(path)
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
    assert not loaded.training and type(loaded) is type(model)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left


def test_conv_model_round_trip(tmp_path):
    from latentatlas.models import build_model, model_config

    model = build_model(model_config("ae", architecture="conv", width=8, latent_dim=4), (3, 32, 32)).eval()
    loaded = load_model(save_model(tmp_path / "ae.pt", model))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.encode(x).mean, model.encode(x).mean, rtol=0, atol=0)


def test_overwrite_is_atomic_replace(tmp_path):
    model = tiny_model("ae")
    path = tmp_path / "m.pt"
    save_checkpoint(path, {**model_payload(model), "epoch": 1})
    save_checkpoint(path, {**model_payload(model), "epoch": 2})
    assert load_checkpoint(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint: no such file"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="corrupt or not a latentatlas checkpoint"):
        load_model(garbage)
    good = save_model(tmp_path / "good.pt", tiny_model("vae"))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="corrupt or not a latentatlas checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a latentatlas checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(ValueError, match="missing key"):
        save_checkpoint(tmp_path / "x.pt", {"model": {}})
    with pytest.raises(TypeError, match="latentatlas model"):
        model_payload(torch.nn.Linear(2, 2))


def test_a_checkpoint_written_by_version_0_1_still_loads(tmp_path):
    """Format 1: one ModelConfig for AE and VAE (with kl_weight on the AE and an options dict), no n_classes."""
    for family in ("ae", "vae"):
        model = tiny_model(family, hidden_layers=3).eval()
        old = {"format": 1, "model": model.state_dict(), "image_shape": [1, 6, 6],
               "model_config": {"family": family, "latent_dim": 2, "architecture": "mlp", "width": 16,
                                "likelihood": "bernoulli", "kl_weight": 1.0, "kl_warmup_epochs": 0.0,
                                "options": {"hidden_layers": 3}}}
        torch.save(old, tmp_path / f"{family}.pt")
        loaded = load_model(tmp_path / f"{family}.pt")
        assert loaded.config == model.config and loaded.config.hidden_layers == 3
        x = torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)


def test_a_conv_checkpoint_from_before_decoder_output_loads_its_network(tmp_path):
    """Checkpoints written before ``model.decoder_output`` existed hold the conv3x3 decoder: they still load,
    as that network, and a resume with today's default is refused naming the field and how to keep it."""
    from pathlib import Path

    from latentatlas.models import build_model, model_config
    from latentatlas.training.checkpoint import check_fixed_settings

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(model_config("vae", width=8, latent_dim=4, decoder_output="conv3x3"), (1, 28, 28)).eval()
    payload = model_payload(model)
    del payload["model_config"]["decoder_output"]
    save_checkpoint(tmp_path / "old.pt", payload)
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.config == model.config and loaded.config.decoder_output == "conv3x3"
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)
    today = model_config("vae", width=8, latent_dim=4)
    with pytest.raises(ValueError, match=r"model.decoder_output: 'conv3x3' -> 'transposed'; keep them "
                                         r"\(--set model.decoder_output=conv3x3\)"):
        check_fixed_settings(load_checkpoint(tmp_path / "old.pt"), today, 0, Path("old.pt"))
    check_fixed_settings(load_checkpoint(tmp_path / "old.pt"), model.config, 0, Path("old.pt"))   # same: accepted
