"""Failed, interrupted, diverged and resumed trainings: what is used is what is recorded, a failure can be
retried without cleaning up by hand, messages name only files that exist, Ctrl-C stops in one line."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from latentatlas.runs.store import Run
from latentatlas.training import TrainingDiverged, load_checkpoint, train
from latentatlas.training import trainer as trainer_module

from ..training.helpers import tiny_dataset, tiny_model, tiny_train_config
from .conftest import error_lines, ring_config, subprocess_env, write_config
from .faults import Interrupt


def _lr_of(run_dir: Path) -> float:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["optimizers"]["main"]["param_groups"][0]["lr"]


def test_a_learning_rate_changed_on_resume_is_used_and_recorded(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 1, "lr": 0.01}))
    assert cli("train", config)[0] == 0
    run = Run.open(tmp_path / "runs" / "r")
    assert cli("train", config, "--resume", "--set", "train.epochs=2", "--set", "train.lr=0.0005")[0] == 0
    assert run.config.train.lr == 0.0005 and _lr_of(run.path) == 0.0005
    assert run.read_metrics()["train"]["epochs_run"] == 2


def test_a_resumed_lr_changes_the_weights_it_reaches(tmp_path):
    data = tiny_dataset()
    weights = {}
    for lr in (1e-2, 1e-4):
        train(tiny_model(), data, tiny_train_config(epochs=1, lr=1e-2), tmp_path / str(lr), seed=0)
        train(tiny_model(), data, tiny_train_config(epochs=2, lr=lr), tmp_path / str(lr), seed=0, resume=True)
        assert _lr_of(tmp_path / str(lr)) == lr
        weights[lr] = load_checkpoint(tmp_path / str(lr) / "checkpoints" / "last.pt")["model"]
    assert any(not torch.equal(weights[1e-2][k], weights[1e-4][k]) for k in weights[1e-2])


def test_a_seed_changed_on_resume_is_refused_and_config_yaml_is_kept(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 1}))
    assert cli("train", config)[0] == 0
    recorded = (tmp_path / "runs" / "r" / "config.yaml").read_bytes()
    code, _, err = cli("train", config, "--resume", "--set", "seed=5", "--set", "train.epochs=2")
    assert code == 2
    assert "seed: 0 -> 5" in error_lines(err)[0] and "cannot change on resume" in error_lines(err)[0]
    assert (tmp_path / "runs" / "r" / "config.yaml").read_bytes() == recorded


def test_a_failed_resume_leaves_config_yaml_as_it_was(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 1}))
    assert cli("train", config)[0] == 0
    run_dir = tmp_path / "runs" / "r"
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"damaged")
    recorded = (run_dir / "config.yaml").read_bytes()
    code, _, err = cli("train", config, "--resume", "--set", "train.epochs=3")
    assert code == 2 and "last.pt" in error_lines(err)[0]
    assert (run_dir / "config.yaml").read_bytes() == recorded


@pytest.mark.parametrize("retry", [[], ["--resume"]])
def test_a_training_that_failed_before_its_first_checkpoint_can_be_retried(tmp_path, cli, retry):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"lr": 1e9}))
    code, _, err = cli("train", config)
    assert code == 2 and "no checkpoint was written yet by this training" in error_lines(err)[0]
    assert (tmp_path / "runs" / "r" / "config.yaml").is_file()     # the half-made folder of the failure
    code, _, err = cli("train", config, "--set", "train.lr=0.001", *retry)
    assert code == 0, err
    run = Run.open(tmp_path / "runs" / "r")
    assert run.config.train.lr == 0.001 and [h["epoch"] for h in run.history()] == [1, 2]


def test_a_run_with_a_checkpoint_is_not_started_over(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 1}))
    assert cli("train", config)[0] == 0
    code, _, err = cli("train", config)
    assert code == 2 and "already exists" in error_lines(err)[0] and "--resume" in error_lines(err)[0]


def _named_files(message: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"'([^']+\.pt)'", message)]


def test_divergence_messages_name_only_files_that_exist(tmp_path):
    data, steps_per_epoch = tiny_dataset(), 4
    for at_step, expect_file in ((2, False), (steps_per_epoch + 2, True)):
        run_dir = tmp_path / f"at{at_step}"
        if at_step == 2:     # a stale last.pt of an earlier training in the same folder is not this training's
            train(tiny_model(), data, tiny_train_config(epochs=1), run_dir, seed=0)
        model = tiny_model()
        real_loss, calls = model.loss, {"n": 0}

        def loss(batch, _real=real_loss, _calls=calls, _at=at_step, **kw):
            _calls["n"] += torch.is_grad_enabled()
            total, terms = _real(batch, **kw)
            return (total * float("nan") if _calls["n"] == _at and torch.is_grad_enabled() else total), terms

        model.loss = loss
        with pytest.raises(TrainingDiverged) as failure:
            train(model, data, tiny_train_config(epochs=3), run_dir, seed=0)
        named = _named_files(str(failure.value))
        assert all(p.is_file() for p in named)
        assert bool(named) == expect_file, str(failure.value)
        if not expect_file:
            assert "no checkpoint was written yet by this training" in str(failure.value)


def _exploding(model, after_step: int):
    real_loss, calls = model.loss, {"n": 0}

    def loss(batch, **kw):
        calls["n"] += torch.is_grad_enabled()
        total, terms = real_loss(batch, **kw)
        return (total * 1e6 if calls["n"] > after_step else total), terms

    model.loss = loss
    return model


def test_an_exploding_loss_warns_and_can_be_made_an_error(tmp_path, caplog):
    data = tiny_dataset()
    with caplog.at_level(logging.WARNING):
        result = train(_exploding(tiny_model(), 3), data, tiny_train_config(epochs=2), tmp_path / "a", seed=0)
    assert result.epochs_run == 2
    warnings = [r.getMessage() for r in caplog.records if "loss_growth_limit" in r.getMessage()]
    assert len(warnings) == 1 and "epoch 1, step 4" in warnings[0] and "loss_growth_error" in warnings[0]
    with pytest.raises(TrainingDiverged, match=r"main loss grew from .* more than train.loss_growth_limit=1000"):
        train(_exploding(tiny_model(), 5), data, tiny_train_config(epochs=2, loss_growth_error=True),
              tmp_path / "b", seed=0)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        train(tiny_model(), data, tiny_train_config(epochs=2), tmp_path / "c", seed=0)   # a healthy run
    assert "loss_growth_limit" not in caplog.text


@pytest.mark.parametrize("every", [1, 3])
def test_a_problem_is_reported_at_its_own_step_however_often_the_losses_are_read(tmp_path, monkeypatch, caplog,
                                                                                  every):
    """On a GPU the losses of several steps are read together (one wait); the CPU reads every step.  Both
    name the step where the loss went bad (4 steps an epoch: reads at steps 3, 4 (epoch end), 7, ...)."""
    monkeypatch.setitem(trainer_module.HEALTH_EVERY, "cpu", every)
    model = tiny_model()
    real_loss, calls = model.loss, {"n": 0}

    def loss(batch, **kw):
        calls["n"] += torch.is_grad_enabled()
        total, terms = real_loss(batch, **kw)
        return (total * float("nan") if calls["n"] == 6 else total * 1e6 if calls["n"] >= 2 else total), terms

    model.loss = loss
    with caplog.at_level(logging.WARNING), pytest.raises(TrainingDiverged) as failure:
        train(model, tiny_dataset(), tiny_train_config(epochs=3), tmp_path, seed=0)
    assert "non-finite main loss (nan on rank 0) at epoch 2, step 6;" in str(failure.value)
    assert "(epoch 1)" in str(failure.value)                      # the last good checkpoint: epoch 1's
    warnings = [r.getMessage() for r in caplog.records if "loss_growth_limit" in r.getMessage()]
    assert len(warnings) == 1 and "at epoch 1, step 2:" in warnings[0]


def test_ctrl_c_in_the_cli_is_one_line_with_the_resume_command_then_resume_works(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 3}))
    with Interrupt(at=6, kinds=("step",)):       # the second step of epoch 2 (4 steps an epoch)
        code, _, err = cli("train", config, "--set", "train.batch_size=64")
    assert code == 130
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0] == (f"latentatlas: training interrupted in epoch 2; the last good checkpoint is "
                        f"'{tmp_path / 'runs' / 'r' / 'checkpoints' / 'last.pt'}' (epoch 1); resume with: "
                        f"latentatlas train {config} --resume --set train.batch_size=64")
    code, _, err = cli("train", config, "--resume", "--set", "train.batch_size=64")
    assert code == 0, err
    assert [h["epoch"] for h in Run.open(tmp_path / "runs" / "r").history()] == [1, 2, 3]


def test_sigint_stops_a_cli_training_cleanly_with_exit_code_130(tmp_path, cli):
    config = write_config(tmp_path, ring_config(tmp_path / "runs", train={"epochs": 100000, "patience": None}))
    last = tmp_path / "runs" / "r" / "checkpoints" / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "latentatlas.cli", "train", str(config)], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=180)   # hang guards, generous for a loaded machine
    assert proc.returncode == 130, err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("latentatlas: training interrupted in epoch ")
    assert lines[0].endswith(f"resume with: latentatlas train {config} --resume")
    epoch = load_checkpoint(last)["epoch"]
    code, _, err = cli("train", config, "--resume", "--set", f"train.epochs={epoch + 1}")
    assert code == 0, err
    assert yaml.safe_load((last.parents[1] / "config.yaml").read_text())["train"]["epochs"] == epoch + 1


def test_ctrl_c_in_another_stage_is_one_line_and_exit_code_130(run_copy, cli, monkeypatch):
    from latentatlas.runs import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "encode_stage", interrupted)
    code, _, err = cli("encode", run_copy)
    assert code == 130
    assert error_lines(err) == ["latentatlas: interrupted; the files of finished stages are kept: run the same "
                                "command again to go on"]


def test_ctrl_c_under_torchrun_is_said_once_with_the_torchrun_command(tmp_path, cli, monkeypatch):
    """Every worker printed its own line (rank 1's said no checkpoint was written, as only rank 0 writes), and
    both suggested a one-process `latentatlas train`."""
    from latentatlas.runs import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    config = write_config(tmp_path, ring_config(tmp_path / "runs"))
    monkeypatch.setattr(pipeline, "train_stage", interrupted)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for rank, said in (("1", []), ("0", ["latentatlas: interrupted; the files of finished stages are kept; continue "
                                         f"with: torchrun --nproc_per_node=2 -m latentatlas.cli train {config} "
                                         "--resume"])):
        monkeypatch.setenv("RANK", rank)
        code, _, err = cli("train", config)
        assert code == 130 and error_lines(err) == said
