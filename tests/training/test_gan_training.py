"""Two-player training: resume, model selection by the monitor, divergence, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from latentatlas.models import build_model, model_config
from latentatlas.training import TrainingDiverged, load_checkpoint, train

from .helpers import GAN_OPTIONS, Kill, tiny_dataset, tiny_model, tiny_train_config


def test_resume_of_a_two_player_run_reproduces_the_uninterrupted_weights(tmp_path):
    data, cfg = tiny_dataset(), tiny_train_config(epochs=3)
    train(tiny_model("gan", **GAN_OPTIONS), data, cfg, tmp_path / "straight", seed=1)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model("gan", **GAN_OPTIONS), data, cfg, tmp_path / "killed", seed=1, callbacks=[Kill(2)])
    resumed = train(tiny_model("gan", seed=7, **GAN_OPTIONS), data, cfg, tmp_path / "killed", seed=1, resume=True)
    assert resumed.epochs_run == 3
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert any(k.startswith("generator_ema.") for k in a["model"]) and int(a["model"]["ema_updates"]) > 0
    for key, value in a["model"].items():                       # both players and the EMA generator
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-6)
    assert set(a["optimizers"]) == {"discriminator", "generator"}
    for name, state in a["optimizers"].items():                 # both optimizers
        for i, moments in state["state"].items():
            for m in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(b["optimizers"][name]["state"][i][m], moments[m], rtol=0, atol=1e-6)


class _Scores:
    """Logs a made-up monitor_frechet per epoch (what the sample monitor logs for a GAN)."""

    def __init__(self, values: dict[int, float]) -> None:
        self.values = values

    def on_epoch_end(self, epoch, model):
        return {"monitor_frechet": self.values[epoch]} if epoch in self.values else None


def test_a_gan_picks_best_pt_and_stops_by_the_monitor_score(tmp_path):
    data = tiny_dataset()
    result = train(tiny_model("gan"), data, tiny_train_config(epochs=6, patience=2), tmp_path / "a", seed=0,
                   callbacks=[_Scores({1: 9.0, 2: 4.0, 3: 5.0, 4: 6.0, 5: 1.0})])
    assert result.selection_metric == "monitor_frechet" and result.best_score == 4.0 and result.best_epoch == 2
    assert result.stopped_early and result.epochs_run == 4 and "monitor_frechet" in result.reason
    assert load_checkpoint(tmp_path / "a" / "checkpoints" / "best.pt")["epoch"] == 2
    assert [h["best_monitor_frechet"] for h in result.history] == [9.0, 4.0, 4.0, 4.0]
    # no monitor at all (and no validation loss): the latest weights are kept as best, nothing raises
    plain = train(tiny_model("gan"), data, tiny_train_config(epochs=2), tmp_path / "b", seed=0)
    assert plain.best_epoch == 2 and math.isinf(plain.best_score) and plain.history[-1]["best_monitor_frechet"] is None
    # the monitor runs every second epoch: unscored epochs neither improve nor count against patience
    sparse = train(tiny_model("gan"), data, tiny_train_config(epochs=4, patience=1), tmp_path / "c", seed=0,
                   callbacks=[_Scores({2: 3.0, 4: 2.0})])
    assert sparse.best_epoch == 4 and sparse.epochs_run == 4


def test_an_exploding_discriminator_stops_training(tmp_path, monkeypatch):
    import latentatlas.models.gan as gan

    monkeypatch.setattr(gan, "EXPLODED", 50.0)
    model = tiny_model("gan", loss="wasserstein", lr_discriminator=1.0)
    with pytest.raises(TrainingDiverged, match=r"the discriminator exploded \(mean .* score .*beyond 50\) at epoch 1"
                       r".*no checkpoint was written yet"):
        train(model, tiny_dataset(), tiny_train_config(epochs=5), tmp_path, seed=0)
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


def test_a_conditional_model_needs_labels(tmp_path):
    data = tiny_dataset()
    with pytest.raises(ValueError, match="model.conditional: the 'cgan' model is class-conditional"):
        build_model(model_config("cgan", architecture="mlp"), data.image_shape, data.n_classes)
    labelled = tiny_dataset()
    labelled.labels = torch.arange(len(labelled)) % 3
    model = build_model(model_config("cgan", architecture="mlp", latent_dim=2, width=16), data.image_shape,
                        labelled.n_classes)
    with pytest.raises(ValueError, match="data: the 'cgan' model needs class labels; tiny has none"):
        train(model, data, tiny_train_config(epochs=1), tmp_path / "a", seed=0)
    result = train(model, labelled, tiny_train_config(epochs=1), tmp_path / "b", seed=0)
    assert math.isfinite(result.history[0]["train_generator_loss"])
