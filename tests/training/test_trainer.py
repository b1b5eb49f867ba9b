"""The training loop: files written, resume equivalence, divergence, early stopping, callbacks, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch

from latentatlas.data.base import to_float
from latentatlas.training import TrainingDiverged, load_checkpoint, load_model, resolve_device, train

from .helpers import Kill, tiny_dataset, tiny_model, tiny_train_config


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_checkpoints_and_metrics(tmp_path):
    data, model = tiny_dataset(), tiny_model("vae")
    result = train(model, data, tiny_train_config(epochs=3), tmp_path, seed=0)
    assert result.epochs_run == 3 and not result.stopped_early and result.reason == "completed 3 epochs"
    n_train = len(data.part("train"))
    assert result.steps == 3 * math.ceil(n_train / 11) and result.device == "cpu"
    lines = _lines(tmp_path)
    assert [line["epoch"] for line in lines] == [1, 2, 3] and lines == result.history
    for key in ("step", "seconds", "train_loss", "train_recon", "train_kl", "val_loss", "val_kl", "best_val_loss"):
        assert key in lines[0]
    assert lines[-1]["val_loss"] < lines[0]["val_loss"]  # it learns
    assert result.selection_metric == "val_loss" and result.best_score == min(line["val_loss"] for line in lines)
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    for key in ("format", "model", "model_config", "image_shape", "optimizers", "epoch", "step", "best_score",
                "bad_epochs", "generator_state", "train_config", "history"):
        assert key in last, key
    assert last["epoch"] == 3 and last["step"] == result.steps and set(last["optimizers"]) == {"main"}
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best["epoch"] == result.best_epoch
    # on return the model holds the best weights; they equal the rebuilt best.pt model
    rebuilt = load_model(result.checkpoint)
    for key, value in rebuilt.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[key], rtol=0, atol=0)


def test_same_seed_same_weights_and_val_loss_is_deterministic(tmp_path):
    data = tiny_dataset()
    a = train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path / "a", seed=3)
    b = train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path / "b", seed=3)
    c = train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path / "c", seed=4)
    assert a.history[0]["val_loss"] == b.history[0]["val_loss"] != c.history[0]["val_loss"]


@pytest.mark.parametrize("family, options", [("vae", {}), ("ae", {"hflip": True, "lr_schedule": "cosine"})])
def test_resume_reaches_the_same_weights(tmp_path, family, options):
    data, cfg = tiny_dataset(), tiny_train_config(epochs=3, **options)
    straight = train(tiny_model(family), data, cfg, tmp_path / "straight", seed=1)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(family), data, cfg, tmp_path / "killed", seed=1, callbacks=[Kill(2)])
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = train(tiny_model(family, seed=9), data, cfg, tmp_path / "killed", seed=1, resume=True)
    assert resumed.epochs_run == 3 and resumed.steps == straight.steps
    assert _lines(tmp_path / "killed") == resumed.history
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6)
    assert [h["val_loss"] for h in a["history"]] == pytest.approx([h["val_loss"] for h in b["history"]], abs=1e-5)


def test_resume_extends_a_finished_run(tmp_path):
    data = tiny_dataset()
    straight = train(tiny_model(), data, tiny_train_config(epochs=3), tmp_path / "a", seed=2)
    train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path / "b", seed=2)
    extended = train(tiny_model(), data, tiny_train_config(epochs=3), tmp_path / "b", seed=2, resume=True)
    assert extended.history[-1]["val_loss"] == pytest.approx(straight.history[-1]["val_loss"], abs=1e-5)
    again = train(tiny_model(), data, tiny_train_config(epochs=3), tmp_path / "b", seed=2, resume=True)
    assert again.epochs_run == 3 and again.steps == extended.steps  # nothing left to do


def test_resume_errors(tmp_path):
    data = tiny_dataset()
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path, seed=0, resume=True)
    train(tiny_model(), data, tiny_train_config(epochs=1), tmp_path, seed=0)
    with pytest.raises(ValueError, match="resume: the model and the seed cannot change.*model.family"):
        train(tiny_model("ae"), data, tiny_train_config(epochs=2), tmp_path, seed=0, resume=True)


def test_non_finite_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    data, model = tiny_dataset(), tiny_model()
    steps_per_epoch = math.ceil(len(data.part("train")) / 11)
    real_loss, calls = model.loss, {"n": 0}

    def loss(batch, **kw):
        calls["n"] += torch.is_grad_enabled()  # count training calls only (validation runs under no_grad)
        total, terms = real_loss(batch, **kw)
        if calls["n"] == steps_per_epoch + 2 and torch.is_grad_enabled():  # second batch of epoch 2
            total = total * float("nan")
        return total, terms

    model.loss = loss
    with pytest.raises(TrainingDiverged, match=rf"epoch 2, step {steps_per_epoch + 2}\b"):
        train(model, data, tiny_train_config(epochs=3), tmp_path, seed=0)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and last["step"] == steps_per_epoch
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    assert len(_lines(tmp_path)) == 1
    load_model(tmp_path / "checkpoints" / "best.pt")


def test_early_stopping_with_patience(tmp_path):
    # lr=0: the weights never change, so the (deterministic) validation loss never improves after epoch 1
    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=10, lr=0.0, patience=2), tmp_path, seed=0)
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1
    assert result.reason == "early stopping: no improvement of val_loss in 2 epochs"
    assert len(set(line["val_loss"] for line in result.history)) == 1


class _Monitor:
    def __init__(self, stop_at: int) -> None:
        self.stop_at, self.seen = stop_at, []

    def on_epoch_end(self, epoch, model):
        self.seen.append((epoch, model.training))
        return {"fid": torch.tensor(10.0 - epoch), "stop": epoch >= self.stop_at}


def test_callbacks_log_and_stop(tmp_path):
    monitor = _Monitor(stop_at=2)
    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=5), tmp_path, seed=0, callbacks=[monitor])
    assert monitor.seen == [(1, False), (2, False)]
    assert result.stopped_early and result.epochs_run == 2 and result.reason == "stopped by a callback after epoch 2"
    assert [(line["fid"], line["stop"]) for line in _lines(tmp_path)] == [(9.0, False), (8.0, True)]


def test_a_callback_that_says_why_it_stops_is_quoted_in_the_reason(tmp_path):
    class Patient:
        def on_epoch_end(self, epoch, model):
            return {"stop": epoch == 2, **({"stop_reason": "no improvement in 1 evaluation"} if epoch == 2 else {})}

    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=5), tmp_path, seed=0, callbacks=[Patient()])
    assert result.reason == "stopped by a callback after epoch 2: no improvement in 1 evaluation"


def test_max_steps_and_empty_validation(tmp_path):
    data = tiny_dataset()
    result = train(tiny_model(), data, tiny_train_config(epochs=5, max_steps=5), tmp_path / "a", seed=0)
    assert result.steps == 5 and result.reason == "reached max_steps=5" and not result.stopped_early
    # a budget that cuts the last planned epoch short is the reason (it read 'completed 2 epochs')
    cut = train(tiny_model(), data, tiny_train_config(epochs=2, max_steps=6), tmp_path / "c", seed=0)
    assert cut.steps == 6 and cut.epochs_run == 2 and cut.reason == "reached max_steps=6"
    no_val = data.subset(torch.nonzero(data.split != 1).flatten())
    result = train(tiny_model(), no_val, tiny_train_config(epochs=2), tmp_path / "b", seed=0)
    assert "val_loss" not in result.history[0] and result.best_score == min(h["train_loss"] for h in result.history)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"device: expected 'auto', 'cpu'.*got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(TypeError, match="device"):
        resolve_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.mark.parametrize("changes,pattern", [
    ({"epochs": 0}, r"train.epochs: expected an int >= 1, got 0"),
    ({"batch_size": 0}, r"train.batch_size: expected an int >= 1, got 0"),
    ({"lr": -1.0}, r"train.lr: expected a finite number >= 0, got -1.0"),
    ({"patience": 0}, r"train.patience: expected an int >= 1 or None, got 0"),
    ({"max_steps": 0}, r"train.max_steps"),
    ({"device": "gpu"}, r"device: expected"),
    ({"precision": "fp8"}, r"train.precision: expected one of .*fp8"),
    ({"hflip": "yes"}, r"train.hflip: expected true or false, got 'yes'"),
    ({"lr_schedule": "linear"}, r"train.lr_schedule: expected one of .*'cosine'.*got 'linear'"),
])
def test_bad_train_config(tmp_path, changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        train(tiny_model(), tiny_dataset(), tiny_train_config(**changes), tmp_path, seed=0)


def test_bad_data(tmp_path):
    data = tiny_dataset()
    with pytest.raises(ValueError, match=r"data: image shape \(1, 6, 6\) does not match the model's \(1, 8, 8\)"):
        train(tiny_model(shape=(1, 8, 8)), data, tiny_train_config(), tmp_path, seed=0)
    data.split = None
    with pytest.raises(ValueError, match="no split assigned"):
        train(tiny_model(), data, tiny_train_config(), tmp_path, seed=0)
    with pytest.raises(TypeError, match="data: expected an ImageDataset"):
        train(tiny_model(), torch.zeros(3, 1, 6, 6), tiny_train_config(), tmp_path, seed=0)


def _two_phase_ae(decoder_repeat: int = 1, decoder_lr: float | None = None):
    """An AE whose encoder and decoder are stepped as two phases (like a GAN's two players)."""
    from latentatlas.models.base import Optim, Phase

    model = tiny_model("ae")
    model.phases = lambda: [
        Phase("encoder", lambda: list(model.encoder.parameters()), model.loss),
        Phase("decoder", lambda: list(model.decoder.parameters()), model.loss, Optim(lr=decoder_lr, betas=(0.5, 0.9)),
              repeat=decoder_repeat)]
    return model


def test_several_phases_each_get_an_optimizer(tmp_path):
    model = _two_phase_ae(decoder_lr=0.05)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(model, tiny_dataset(), tiny_train_config(epochs=1), tmp_path, seed=0)
    line = result.history[0]
    assert {"train_encoder_loss", "train_encoder_recon", "train_decoder_loss", "val_loss"} <= set(line)
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert set(last["optimizers"]) == {"encoder", "decoder"}
    groups = {name: state["param_groups"][0] for name, state in last["optimizers"].items()}
    assert groups["encoder"]["lr"] == 1e-2 and groups["encoder"]["betas"] == (0.9, 0.999)   # the run's settings
    assert groups["decoder"]["lr"] == 0.05 and groups["decoder"]["betas"] == (0.5, 0.9)     # the phase's own
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"encoder", "decoder"}


def test_a_phase_with_repeat_r_runs_on_the_last_r_batches_of_each_round(tmp_path):
    """Phases [encoder (repeat 1), decoder (repeat 3)]: rounds of 3 batches; the encoder steps on the
    third batch of each round, the decoder on all three."""
    model = _two_phase_ae(decoder_repeat=3)
    ran = []
    phases = model.phases()

    def spy(name, inner):
        def loss(batch, **kw):
            if torch.is_grad_enabled():
                ran.append(name)
            return inner(batch, **kw)
        return loss

    for p in phases:
        p.loss = spy(p.name, p.loss)
    model.phases = lambda: phases
    train(model, tiny_dataset(), tiny_train_config(epochs=3, max_steps=6), tmp_path, seed=0)  # 4 batches an epoch
    assert ran == ["decoder", "decoder", "encoder", "decoder"] * 2


@pytest.mark.parametrize("hflip", [False, True])
def test_hflip_mirrors_about_half_the_training_rows(tmp_path, hflip):
    """Every row a training step sees is a training image or its left-right mirror; with train.hflip
    about half are mirrored (the tiny images are not symmetric), without it none."""
    data, model, seen = tiny_dataset(), tiny_model("ae"), []
    phases = model.phases()
    inner = phases[0].loss

    def spy(batch, **kw):
        if torch.is_grad_enabled():
            seen.append(batch.x.detach().clone())
        return inner(batch, **kw)

    phases[0].loss = spy
    model.phases = lambda: phases
    train(model, data, tiny_train_config(epochs=4, hflip=hflip), tmp_path, seed=0)
    rows = torch.cat(seen).flatten(1)
    images = to_float(data.part("train").images)
    plain, mirrored = images.flatten(1), images.flip(3).flatten(1)
    is_plain = (rows[:, None] == plain[None]).all(2).any(1)
    is_mirrored = (rows[:, None] == mirrored[None]).all(2).any(1)
    assert len(rows) == 4 * len(images) and bool((is_plain | is_mirrored).all())
    share = float((is_mirrored & ~is_plain).float().mean())
    assert (0.35 < share < 0.65) if hflip else share == 0.0


def test_a_time_budget_stops_training(tmp_path):
    result = train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=50, max_minutes=1e-9), tmp_path, seed=0)
    assert result.reason.startswith("reached max_minutes=1e-09") and result.epochs_run == 1
    assert result.steps < 4 and 0 < result.train_seconds < 5     # stopped inside the first epoch
    with pytest.raises(ValueError, match=r"train.max_minutes: expected a finite number > 0"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(max_minutes=0.0), tmp_path / "b", seed=0)


def test_a_multi_phase_model_without_validation_keeps_its_latest_weights(tmp_path):
    data = tiny_dataset()
    no_val = data.subset(torch.nonzero(data.split != 1).flatten())
    result = train(_two_phase_ae(), no_val, tiny_train_config(epochs=2), tmp_path, seed=0)
    assert result.best_epoch == 2 and result.epochs_run == 2


def test_data_parallel_ranks_ask_rank_0s_clock_at_the_step_logs_cadence(tmp_path):
    """Under DDP each question is a broadcast read (a wait on a GPU), so max_minutes is asked every
    ``every`` batches (32 on a GPU), not every batch; a single process reads its own clock every batch."""
    from types import SimpleNamespace

    from latentatlas.training import trainer as trainer_module

    trainer = trainer_module._Trainer(tiny_model(), tiny_dataset(), tiny_train_config(max_minutes=1.0), tmp_path,
                                      0, ())
    asked: list[bool] = []
    trainer.dist = SimpleNamespace(active=True, from_main=lambda flag, device: asked.append(flag) or flag)
    trainer.steps.every = 32
    assert not any(trainer._out_of_budget(0.0, b) for b in range(70)) and len(asked) == 3   # batches 0, 32, 64
    assert trainer._out_of_budget(61.0, 64) and not trainer._out_of_budget(61.0, 65)


def test_epoch_means_weigh_each_term_by_the_rows_of_the_batches_where_it_ran():
    from types import SimpleNamespace

    from latentatlas.training.state import RowMeans

    steps = [({"loss": 1.0, "d_real": 2.0}, 3), ({"loss": 4.0}, 1), ({"loss": 0.5, "d_real": -1.0}, 2),
             ({"d_real": 7.0, "loss": 2.0}, 4)]   # a phase's terms come and go; their order may change
    means = RowMeans()
    for terms, rows in steps:
        means.add({k: torch.tensor(v) for k, v in terms.items()}, rows)
    got = means.reduce(SimpleNamespace(active=False, sum=lambda packed: packed), torch.device("cpu"))
    for key in ("loss", "d_real"):
        ran = [(terms[key], rows) for terms, rows in steps if key in terms]
        assert got[key] == pytest.approx(sum(v * r for v, r in ran) / sum(r for _, r in ran), rel=1e-6)
    assert set(got) == {"loss", "d_real"} and RowMeans().reduce(SimpleNamespace(active=False), None) == {}
