"""No training step of any family waits for the GPU (tests/gpu_waits.py says what waits).  The trainer reads
the losses of 32 phase steps in one such wait (:class:`~latentatlas.training.state.StepLog`); nothing else in a
step may wait.  On the CPU the waits are found by a dispatch mode and a watch on ``Tensor.to(device)``; with a
GPU, also by CUDA's own sync detector (``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import pytest
import torch

import latentatlas.training.trainer as trainer_module
from latentatlas.config import PRECISIONS, TrainConfig
from latentatlas.models import MODELS
from latentatlas.training import train
from tests.gpu_waits import DeviceCopies, WaitsOnCuda
from tests.models.small import N_CLASSES, small_model
from tests.test_devices import _labelled_images

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("family", MODELS.names())
def test_no_training_step_waits_for_the_device(tmp_path, monkeypatch, family, precision, device):
    """At every precision: fp16's gradient scaler hands its overflow check to the fused Adam (no read)."""
    monkeypatch.setitem(trainer_module.HEALTH_EVERY, device, 10**9)   # the step log reads at the epoch end
    real_step, found, watched = trainer_module._Trainer.step, [], []

    def watched_step(self, *args, **kwargs):
        if self.state.step < self.round:   # each phase's first step may set up (a VQ-VAE's k-means codebook)
            return real_step(self, *args, **kwargs)
        watched.append(self.state.step)
        mode, copies = WaitsOnCuda(), DeviceCopies()
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("error")
        try:
            with mode, copies:
                return real_step(self, *args, **kwargs)
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode(0)
            found.extend(mode.found + copies.found)

    monkeypatch.setattr(trainer_module._Trainer, "step", watched_step)
    cfg = TrainConfig(epochs=4, batch_size=12, lr=1e-3, patience=None, device=device, progress=False,
                      precision=precision)
    model = small_model(family)
    train(model, _labelled_images(), cfg, tmp_path, seed=0)
    assert len(watched) >= max(p.repeat for p in model.phases())   # every phase ran in a watched step
    assert not found, f"{family}: a training step waits for the device: " + "; ".join(sorted(set(found)))


def test_labels_outside_the_models_classes_are_named_before_any_step(tmp_path):
    """The steps do not read the labels' range, so the trainer checks the dataset's labels once."""
    data = _labelled_images()
    data.labels[5] = N_CLASSES
    cfg = TrainConfig(epochs=1, batch_size=12, lr=1e-3, patience=None, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"^data: tiny's labels must lie in \[0, 4\) for the model, got 0\.\.4$"):
        train(small_model("cvae"), data, cfg, tmp_path, seed=0)
    assert list(tmp_path.iterdir()) == []
