"""Mixed-precision training (train.precision): autocast really applies, weights and losses stay float32,
the VQ assignment is exact, and fp16's gradient scaler survives a resume."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from latentatlas.models.base import Posterior
from latentatlas.models.losses import reconstruction_loss
from latentatlas.models.quantize import VectorQuantizer
from latentatlas.training import load_checkpoint, train
from latentatlas.config import PRECISIONS
from latentatlas.training import precision as precision_mod
from latentatlas.training.precision import Precision, resolve_precision

from .helpers import Kill, tiny_dataset, tiny_model, tiny_train_config


def test_bf16_training_follows_fp32_and_keeps_float32_weights(tmp_path):
    data = tiny_dataset()
    full = train(tiny_model(), data, tiny_train_config(epochs=4, precision="fp32"), tmp_path / "fp32", seed=0)
    mixed = train(tiny_model(), data, tiny_train_config(epochs=4, precision="bf16"), tmp_path / "bf16", seed=0)
    a = load_checkpoint(tmp_path / "fp32" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "bf16" / "checkpoints" / "last.pt")["model"]
    assert all(v.dtype == a[k].dtype for k, v in b.items())               # the checkpoint is float32 as before
    assert any(not torch.equal(v, a[k]) for k, v in b.items())            # autocast did apply
    curve = [line["val_loss"] for line in mixed.history]
    assert curve[-1] < curve[0]                                           # it learns
    assert curve == pytest.approx([line["val_loss"] for line in full.history], rel=0.02)


def test_losses_and_posteriors_are_float32_under_autocast(generator):
    mean = torch.randn(8, 4, generator=generator).to(torch.bfloat16)
    logvar = torch.randn(8, 4, generator=generator).to(torch.bfloat16)
    logits = torch.randn(8, 1, 6, 6, generator=generator).to(torch.bfloat16)
    x = torch.rand(8, 1, 6, 6, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        kl = Posterior(mean, logvar).kl()
        recon = reconstruction_loss(logits, x, "gaussian")
    m, v = mean.double(), logvar.double()
    torch.testing.assert_close(kl.double(), 0.5 * (m ** 2 + v.exp() - 1 - v).sum(1), rtol=1e-6, atol=1e-6)
    expected = (torch.sigmoid(logits.double()) - x.double()).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(recon.double(), expected, rtol=1e-6, atol=1e-6)
    assert kl.dtype == recon.dtype == torch.float32


def test_vq_assignment_under_autocast_equals_float32(generator):
    vq = VectorQuantizer(256, 8, kmeans_init=False).eval()
    vq.codebook.copy_(torch.randn(256, 8, generator=generator))
    ze = torch.randn(16, 8, 16, 16, generator=generator)
    _, exact, _ = vq(ze)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zq, mixed, _ = vq(ze)
    assert torch.equal(mixed, exact) and zq.dtype == torch.float32


def test_fp16_scaler_state_round_trips():
    precision = Precision("fp16", torch.device("cpu"), ["main"])
    layer = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    before = layer.weight.detach().clone()
    loss = layer(torch.ones(1, 3)).sum() * 1e35                           # times 2^16 overflows float32
    precision.backward_step(loss, opt, "main")
    assert torch.equal(layer.weight, before)                              # the overflowing step was skipped
    state = precision.state_dict()
    assert state["main"]["scale"] == 2.0 ** 15                            # and the scale halved from 2^16
    fresh = Precision("fp16", torch.device("cpu"), ["main"])
    fresh.load_state_dict(state)
    assert fresh.scalers["main"].get_scale() == 2.0 ** 15
    assert Precision("bf16", torch.device("cpu"), ["main"]).state_dict() == {}


def test_fp16_resume_continues_with_the_saved_scale(tmp_path):
    shape = (1, 28, 28)              # 784 pixels: the first scaled backward passes overflow float16
    data, cfg = tiny_dataset(shape=shape), tiny_train_config(epochs=3, precision="fp16")
    straight = train(tiny_model(shape=shape), data, cfg, tmp_path / "straight", seed=1)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(shape=shape), data, cfg, tmp_path / "killed", seed=1, callbacks=[Kill(2)])
    saved = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert saved["grad_scalers"]["main"]["scale"] < 2.0 ** 16               # the scale moved in epoch 1
    resumed = train(tiny_model(shape=shape, seed=9), data, cfg, tmp_path / "killed", seed=1, resume=True)
    assert resumed.steps == straight.steps
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert b["grad_scalers"] == a["grad_scalers"]
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6)


def test_resuming_in_another_precision_warns(tmp_path, caplog):
    data = tiny_dataset()
    train(tiny_model(), data, tiny_train_config(epochs=1, precision="fp32"), tmp_path, seed=0)
    resumed = train(tiny_model(), data, tiny_train_config(epochs=2, precision="bf16"), tmp_path, seed=0, resume=True)
    assert resumed.epochs_run == 2
    assert "resume: precision changed; the run will not match an uninterrupted one" in caplog.text
    assert "batch_size changed" not in caplog.text


def test_auto_picks_bf16_only_on_a_cpu_with_bfloat16_units(monkeypatch):
    assert [resolve_precision(name, torch.device("cpu")) for name in PRECISIONS] == list(PRECISIONS)
    for units, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(precision_mod, "_cpu_has_bf16_units", lambda units=units: units)
        assert resolve_precision("auto", torch.device("cpu")) == expected
        assert resolve_precision("auto", torch.device("cuda:0")) == "fp32"   # measured faster on a GPU
    assert resolve_precision("auto", torch.device("meta")) == "fp32"


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU flags of Linux's /proc/cpuinfo")
def test_the_cpu_probe_agrees_with_the_cpu_flags():
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    assert precision_mod._cpu_has_bf16_units() == bool(flags & {"amx_bf16", "avx512_bf16"})


@pytest.mark.parametrize("units, resolved", [(True, "bf16"), (False, "fp32")])
def test_auto_trains_in_what_it_resolved_to_and_records_it(tmp_path, monkeypatch, caplog, units, resolved):
    monkeypatch.setattr(precision_mod, "_cpu_has_bf16_units", lambda: units)
    data = tiny_dataset()
    auto = train(tiny_model(), data, tiny_train_config(epochs=2, precision="auto"), tmp_path / "auto", seed=0)
    train(tiny_model(), data, tiny_train_config(epochs=2, precision=resolved), tmp_path / "named", seed=0)
    assert auto.precision == resolved
    saved = load_checkpoint(tmp_path / "auto" / "checkpoints" / "last.pt")
    assert saved["train_config"]["precision"] == resolved                 # the checkpoint says what ran
    named = load_checkpoint(tmp_path / "named" / "checkpoints" / "last.pt")["model"]
    for key, value in saved["model"].items():
        torch.testing.assert_close(value, named[key], rtol=0, atol=1e-6)
    train(tiny_model(), data, tiny_train_config(epochs=3, precision=resolved), tmp_path / "auto", seed=0, resume=True)
    assert "precision changed" not in caplog.text                          # resuming it by name is no change
