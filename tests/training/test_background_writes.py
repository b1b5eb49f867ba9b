"""Checkpoints written on a background thread while training goes on: what is written is the epoch's state,
the next epoch really trains meanwhile, and a failed write still stops the training with its error."""

from __future__ import annotations

import logging
import threading

import pytest
import torch

from latentatlas.training import checkpoint as ckpt_io
from latentatlas.training import load_checkpoint, train
from latentatlas.training.checkpoint import BackgroundWrites, snapshot

from .helpers import tiny_dataset, tiny_model, tiny_train_config


def test_a_snapshot_does_not_change_with_the_tensors_it_copied():
    weight, step = torch.ones(3), torch.tensor(5.0)
    state = {"model": {"w": weight}, "optimizers": [{"step": step, "betas": (0.9, 0.99)}], "epoch": 2}
    copy = snapshot(state)
    weight.add_(1), step.add_(1)
    assert torch.equal(copy["model"]["w"], torch.ones(3)) and float(copy["optimizers"][0]["step"]) == 5.0
    assert copy["optimizers"][0]["betas"] == (0.9, 0.99) and copy["epoch"] == 2
    assert copy["model"] is not state["model"] and copy["optimizers"][0] is not state["optimizers"][0]


def test_writes_run_one_at_a_time_in_order_and_their_errors_are_raised_by_the_next_wait(tmp_path, caplog):
    writes, done, release = BackgroundWrites(), [], threading.Event()

    def first():
        assert release.wait(10)
        done.append(1)

    writes.submit(first)
    assert done == []            # submit returned while the write waits
    release.set()
    writes.submit(lambda: done.append(2 if done == [1] else "started before the first ended"))
    writes.wait()
    assert done == [1, 2]
    writes.submit(lambda: open(tmp_path / "no-such-folder" / "x", "w"))
    with pytest.raises(FileNotFoundError):
        writes.wait()
    writes.wait()                # the error is raised once
    writes.submit(lambda: 1 / 0)
    with caplog.at_level(logging.WARNING):
        writes.settle()          # another error is on its way: this one is logged
    assert "ZeroDivisionError" in caplog.text


def test_the_next_epoch_trains_while_an_epoch_is_written(tmp_path, monkeypatch):
    """Epoch 1's write waits until epoch 2's end-of-epoch callback has run: a write that held up training would
    wait in vain (and the test would see it) instead of overlapping it."""
    real_save, epoch2_ended, overlapped = ckpt_io.save_checkpoint, threading.Event(), []

    def slow_save(path, payload):
        if payload["epoch"] == 1:
            overlapped.append(epoch2_ended.wait(20))
        return real_save(path, payload)

    class EndOfEpoch2:
        def on_epoch_end(self, epoch, model):
            if epoch == 2:
                epoch2_ended.set()

    monkeypatch.setattr(ckpt_io, "save_checkpoint", slow_save)
    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=3), tmp_path, seed=0,
                   callbacks=[EndOfEpoch2()])
    assert overlapped == [True]
    straight = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=3), tmp_path / "straight", seed=0)
    for which in ("last", "best"):   # what the background wrote is each epoch's state, bit for bit
        a, b = (load_checkpoint(d / "checkpoints" / f"{which}.pt") for d in (tmp_path, tmp_path / "straight"))
        assert a["epoch"] == b["epoch"]
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), (which, key)
        assert torch.equal(a["generator_state"], b["generator_state"])
    untimed = [[{k: v for k, v in line.items() if k != "seconds"} for line in r.history] for r in (result, straight)]
    assert untimed[0] == untimed[1]

def test_a_failed_write_stops_the_training_with_its_error(tmp_path, monkeypatch):
    real_save = ckpt_io.save_checkpoint

    def full_disk(path, payload):
        if payload["epoch"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(path, payload)

    monkeypatch.setattr(ckpt_io, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4), tmp_path, seed=0)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    assert not any(t.name == "latentatlas-checkpoint-write" for t in threading.enumerate())
