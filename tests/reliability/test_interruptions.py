"""Trainings stopped at many points (after a step, inside a checkpoint write, before a rename, killed with
SIGKILL during slow writes) resume to bit-identical weights, optimizer states and best.pt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from latentatlas.training import TrainingInterrupted, load_checkpoint, train

from ..training.helpers import GAN_OPTIONS, tiny_dataset, tiny_model, tiny_train_config
from .faults import KINDS, Interrupt, assert_equal_nested, assert_same_training, leftover_temporary_files

EPOCHS = 3
SCRIPT = Path(__file__).with_name("train_script.py")


def _train(run_dir: Path, family: str = "vae", *, resume: bool = False, init_seed: int = 0):
    options = GAN_OPTIONS if family == "gan" else {}
    return train(tiny_model(family, seed=init_seed, **options), tiny_dataset(), tiny_train_config(epochs=EPOCHS),
                 run_dir, seed=1, resume=resume)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted VAE training: its folder, the fault points it passed, its final (best) weights."""
    run_dir = tmp_path_factory.mktemp("reference")
    with Interrupt() as faults:
        result = _train(run_dir)
    return run_dir, faults.events, result


def _finish(run_dir: Path, family: str = "vae"):
    """Resume (from a differently initialised model: the weights must come from the checkpoint) when a
    checkpoint exists, else start again."""
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    return _train(run_dir, family, resume=resume, init_seed=9 if resume else 0)


def _chosen_points(events: list[str], per_kind: int = 3) -> list[int]:
    """1-based indices of fault points: a few random ones of every kind, the one right after the first
    rename (the fsync of the folder: last.pt is already in place) and the very last one."""
    rng = random.Random(10)
    chosen = {events.index("rename") + 2, len(events)}
    for kind in KINDS:
        indices = [i + 1 for i, e in enumerate(events) if e == kind]
        chosen.update(rng.sample(indices, min(per_kind, len(indices))))
    return sorted(chosen)


def test_an_interrupt_at_any_point_resumes_to_the_same_weights(reference, tmp_path):
    ref_dir, events, ref_result = reference
    assert set(events) == set(KINDS) and events[-2:] == ["rename", "sync"]   # publishing best.pt of epoch 3
    for at in _chosen_points(events):
        run_dir = tmp_path / f"at{at}"
        with Interrupt(at=at), pytest.raises(TrainingInterrupted) as stop:
            _train(run_dir)
        assert leftover_temporary_files(run_dir) == [], at
        last = run_dir / "checkpoints" / "last.pt"
        assert stop.value.checkpoint == (str(last) if last.is_file() else None), (at, str(stop.value))
        if last.is_file():
            assert load_checkpoint(last)["epoch"] >= 1 and str(last) in str(stop.value)
        result = _finish(run_dir)
        assert_same_training(ref_dir, run_dir)
        assert result.best_epoch == ref_result.best_epoch, at


def test_a_gan_interrupted_again_and_again_still_matches(tmp_path):
    straight = tmp_path / "straight"
    with Interrupt() as faults:
        _train(straight, "gan")
    rng = random.Random(3)
    run_dir, interrupts = tmp_path / "interrupted", 0
    while True:
        with Interrupt(at=rng.randint(1, len(faults.events) // 2)):
            try:
                _finish(run_dir, "gan")
                break
            except TrainingInterrupted:
                interrupts += 1
    assert interrupts >= 2
    assert_same_training(straight, run_dir)


def test_best_pt_is_repaired_after_an_interrupt_between_the_two_writes(reference, tmp_path):
    ref_dir, events, ref_result = reference
    last_rename = len(events) - events[::-1].index("rename")     # before publishing best.pt of epoch 3
    with Interrupt(at=last_rename), pytest.raises(TrainingInterrupted):
        _train(tmp_path)
    stale = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert stale["epoch"] < EPOCHS == load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"]
    model = tiny_model("vae", seed=9)
    result = train(model, tiny_dataset(), tiny_train_config(epochs=EPOCHS), tmp_path, seed=1, resume=True)
    assert result.steps == ref_result.steps   # nothing left to train: the best weights come from last.pt
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == EPOCHS
    assert_equal_nested(best["model"], load_checkpoint(ref_dir / "checkpoints" / "best.pt")["model"], "best")
    assert_equal_nested({k: v for k, v in model.state_dict().items()}, best["model"], "returned model")


def test_sigkill_during_slow_checkpoint_writes_resumes_to_the_same_weights(reference, tmp_path):
    ref_dir = reference[0]
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path), str(EPOCHS), str(torch.get_num_threads())],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (tmp_path / "checkpoints" / "last.pt").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the training script wrote no checkpoint"
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))     # lands inside a slow write most of the time
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] >= 1
    _finish(tmp_path)
    assert leftover_temporary_files(tmp_path) == []   # a killed write's temporary file is cleared on resume
    assert_same_training(ref_dir, tmp_path)
