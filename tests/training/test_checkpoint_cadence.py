"""When the trainer writes its checkpoints: after every epoch, or, when writing would take more than
``train.checkpoint_overhead`` of the time, after the epoch that ends long enough after the last write; the
files at the end, after Ctrl-C or an error are those of an every-epoch training all the same."""

from __future__ import annotations

import pytest
import torch

from latentatlas.training import TrainingDiverged, TrainingInterrupted, load_checkpoint, train
from latentatlas.training import checkpoint as ckpt_io
from latentatlas.training import trainer as trainer_module
from latentatlas.training.checkpoint import WriteCadence, snapshot

from .helpers import Kill, tiny_dataset, tiny_model, tiny_train_config

NEVER_DUE = 1e-12   # an overhead that no write of these tests becomes due under after the first
SCORES = {1: 3.0, 2: 1.0, 3: 2.0, 4: 2.5}   # by epoch: the best epoch (2) is neither the first nor the last


def test_a_snapshot_does_not_change_with_the_tensors_it_copied():
    weight, step = torch.ones(3), torch.tensor(5.0)
    state = {"model": {"w": weight}, "optimizers": [{"step": step, "betas": (0.9, 0.99)}], "epoch": 2}
    copy = snapshot(state)
    weight.add_(1), step.add_(1)
    assert torch.equal(copy["model"]["w"], torch.ones(3)) and float(copy["optimizers"][0]["step"]) == 5.0
    assert copy["optimizers"][0]["betas"] == (0.9, 0.99) and copy["epoch"] == 2
    assert copy["model"] is not state["model"] and copy["optimizers"][0] is not state["optimizers"][0]


def test_a_write_is_due_once_the_time_since_the_last_is_its_seconds_over_the_overhead():
    now = [100.0]
    cadence = WriteCadence(0.1, clock=lambda: now[0])
    assert cadence.due()                 # no write yet
    with cadence.timing():
        now[0] += 0.5                    # a write of 0.5 s: the next one after 5 s
    now[0] += 4.9
    assert not cadence.due()
    now[0] += 0.1
    assert cadence.due()
    with pytest.raises(OSError), cadence.timing():
        raise OSError("disk full")       # a failed write: the cadence is as it was
    assert cadence.due()
    every = WriteCadence(None, clock=lambda: now[0])
    with every.timing():
        now[0] += 10.0
    assert every.due()


def _scored(monkeypatch):
    monkeypatch.setattr(trainer_module._Trainer, "score", lambda self, line: SCORES.get(line["epoch"]))


def _counted_writes(monkeypatch) -> list:
    real_save, written = ckpt_io.save_checkpoint, []

    def save(path, payload):
        written.append((path.name, payload["epoch"]))
        return real_save(path, payload)
    monkeypatch.setattr(ckpt_io, "save_checkpoint", save)
    return written


def _assert_same_files(a_dir, b_dir):
    for which in ("last", "best"):
        a, b = (load_checkpoint(d / "checkpoints" / f"{which}.pt") for d in (a_dir, b_dir))
        assert (a["epoch"], a["step"], a["best_epoch"]) == (b["epoch"], b["step"], b["best_epoch"]), which
        for key in a["model"]:
            assert torch.equal(a["model"][key], b["model"][key]), (which, key)
        for key, state in a["optimizers"]["main"]["state"].items():
            assert torch.equal(state["exp_avg"], b["optimizers"]["main"]["state"][key]["exp_avg"]), which
        assert torch.equal(a["generator_state"], b["generator_state"]), which


def test_writes_held_back_by_the_cadence_end_with_the_files_of_every_epochs_writes(tmp_path, monkeypatch):
    _scored(monkeypatch)
    written = _counted_writes(monkeypatch)
    every = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4), tmp_path / "every", seed=0)
    assert written == [("last.pt", e) for e in (1, 2, 3, 4)]
    written.clear()
    held = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4, checkpoint_overhead=NEVER_DUE),
                 tmp_path / "held", seed=0)
    assert written == [("last.pt", 1), ("best.pt", 2), ("last.pt", 4)]   # the first epoch, then the end
    assert held.best_epoch == every.best_epoch == 2
    _assert_same_files(tmp_path / "every", tmp_path / "held")
    lines = (tmp_path / "held" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4      # a line every epoch, written or not
    model = tiny_model(seed=5)
    train(model, tiny_dataset(), tiny_train_config(epochs=4, checkpoint_overhead=NEVER_DUE), tmp_path / "held",
          seed=0, resume=True)  # nothing left to train; the best weights come from best.pt
    best = load_checkpoint(tmp_path / "held" / "checkpoints" / "best.pt")["model"]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_ctrl_c_writes_the_last_finished_epoch_and_the_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    _scored(monkeypatch)
    cfg = tiny_train_config(epochs=4, checkpoint_overhead=NEVER_DUE)
    train(tiny_model(), tiny_dataset(), cfg, tmp_path / "straight", seed=0)
    with pytest.raises(TrainingInterrupted) as stop:
        train(tiny_model(), tiny_dataset(), cfg, tmp_path / "run", seed=0, callbacks=[Kill(4)])
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert stop.value.checkpoint == str(last) and "(epoch 3)" in str(stop.value)
    assert load_checkpoint(last)["epoch"] == 3
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["epoch"] == 2
    train(tiny_model(seed=9), tiny_dataset(), cfg, tmp_path / "run", seed=0, resume=True)
    _assert_same_files(tmp_path / "straight", tmp_path / "run")


def test_a_divergence_writes_the_last_good_epoch_and_names_it(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module._Trainer, "score",
                        lambda self, line: float("nan") if line["epoch"] == 3 else 1.0 / line["epoch"])
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint is .*last\.pt' \(epoch 2\)"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4, checkpoint_overhead=NEVER_DUE), tmp_path,
              seed=0)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2


def test_another_error_still_writes_the_finished_epochs(tmp_path):
    class Broken:
        def on_epoch_end(self, epoch, model):
            if epoch == 3:
                raise RuntimeError("a bug in a callback")

    with pytest.raises(RuntimeError, match="a bug in a callback"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4, checkpoint_overhead=NEVER_DUE), tmp_path,
              seed=0, callbacks=[Broken()])
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2


def test_a_failed_write_stops_the_training_with_its_error_and_is_not_tried_again(tmp_path, monkeypatch):
    real_save, tries = ckpt_io.save_checkpoint, []

    def full_disk(path, payload):
        if payload["epoch"] == 2:
            tries.append(path.name)
            raise OSError(28, "No space left on device")
        return real_save(path, payload)

    monkeypatch.setattr(ckpt_io, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=4), tmp_path, seed=0)
    assert tries == ["last.pt"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
