"""train.lr_schedule: the closed form against PyTorch's scheduler, the rates a training uses and logs, and
what a checkpoint and a resume keep."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from latentatlas.training import train
from latentatlas.training.schedule import lr_factor

from .helpers import GAN_OPTIONS, tiny_dataset, tiny_model, tiny_train_config


def test_cosine_factor_matches_pytorch_cosine_annealing():
    """Step for step, the factor equals CosineAnnealingLR(T_max=total, eta_min=0)'s rate over its base."""
    total, base = 37, 0.3
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0)
    for step in range(total + 1):
        assert lr_factor("cosine", step, total) == pytest.approx(opt.param_groups[0]["lr"] / base, abs=1e-9)
        opt.step()
        reference.step()
    assert lr_factor("cosine", 0, total) == 1.0 and lr_factor("cosine", total + 5, total) == 0.0
    assert lr_factor("cosine", 10, 20) == pytest.approx(0.5)
    assert lr_factor("constant", 5, 20) == 1.0


def _rates_seen(monkeypatch) -> list[list[float]]:
    """Records, at every Adam step, the learning rate of each of its parameter groups."""
    seen: list[list[float]] = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append([group["lr"] for group in self.param_groups])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    return seen


def test_a_cosine_training_steps_logs_and_saves_its_rates(tmp_path, monkeypatch):
    data, cfg = tiny_dataset(), tiny_train_config(epochs=3, lr_schedule="cosine")
    seen = _rates_seen(monkeypatch)
    result = train(tiny_model(), data, cfg, tmp_path, seed=0)
    total = result.steps
    assert total == 3 * math.ceil(len(data.part("train")) / cfg.batch_size)
    assert [rates[0] for rates in seen] == pytest.approx([cfg.lr * lr_factor("cosine", s, total)
                                                         for s in range(total)], rel=1e-12)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["lr"] for line in lines] == pytest.approx([seen[line["step"] - 1][0] for line in lines])
    assert lines[-1]["lr"] < 0.02 * cfg.lr                          # near zero at the end of the plan
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["optimizers"]["main"]
    assert saved["param_groups"][0]["lr"] == cfg.lr                 # the configured rate, not the last scheduled


def test_constant_is_the_default_and_max_steps_sets_the_plan(tmp_path, monkeypatch):
    seen = _rates_seen(monkeypatch)
    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=3), tmp_path / "constant", seed=0)
    assert {rates[0] for rates in seen} == {1e-2} and result.history[-1]["lr"] == 1e-2
    seen.clear()
    cfg = tiny_train_config(epochs=3, max_steps=7, lr_schedule="cosine")
    train(tiny_model(), tiny_dataset(), cfg, tmp_path / "short", seed=0)
    assert [rates[0] for rates in seen] == pytest.approx([1e-2 * lr_factor("cosine", s, 7) for s in range(7)])


def test_each_phase_of_a_gan_follows_the_schedule_from_its_own_rate(tmp_path, monkeypatch):
    model = tiny_model("gan", lr_generator=4e-3, lr_discriminator=2e-3, **GAN_OPTIONS)
    result = train(model, tiny_dataset(), tiny_train_config(epochs=2, lr_schedule="cosine"), tmp_path, seed=0)
    last, total = result.history[-1], result.steps
    factor = lr_factor("cosine", total - 1, total)
    assert last["lr_generator"] == pytest.approx(4e-3 * factor) and last["lr_discriminator"] == pytest.approx(
        2e-3 * factor)
    assert "lr" not in last


@pytest.mark.parametrize("schedule, warns", [("cosine", True), ("constant", False)])
def test_extending_a_scheduled_run_warns(tmp_path, caplog, schedule, warns):
    """With a schedule the planned length sets the rates, so a resume to more epochs is not the run an
    uninterrupted training would have been; with constant rates it is."""
    data = tiny_dataset()
    train(tiny_model(), data, tiny_train_config(epochs=1, lr_schedule=schedule), tmp_path, seed=0)
    with caplog.at_level(logging.WARNING):
        train(tiny_model(), data, tiny_train_config(epochs=2, lr_schedule=schedule), tmp_path, seed=0, resume=True)
    assert ("resume: epochs changed; the run will not match an uninterrupted one" in caplog.text) is warns
