"""No training step of any family waits for the GPU.

On a GPU the host queues kernels ahead of the device; an operation that needs a value on the host (``item``,
``bool`` of a tensor), sizes its output by the data (``nonzero``, boolean-mask indexing, ``bincount``) or copies
Python data to the device (``torch.tensor(x, device=...)``) stops the host until the queue has run, so host and
device take turns instead of overlapping.  The trainer reads the losses of 32 phase steps in one such wait
(:class:`~latentatlas.training.state.StepLog`); nothing else in a step may wait.

On the CPU this is checked by recording, under a dispatch mode, the operations that wait on CUDA; with a GPU,
also by CUDA's own sync detector (``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import latentatlas.training.trainer as trainer_module
from latentatlas.config import TrainConfig
from latentatlas.models import MODELS
from latentatlas.training import train
from tests.models.small import N_CLASSES, small_model
from tests.test_devices import _labelled_images

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
WAITING = {"_local_scalar_dense", "nonzero", "masked_select", "_unique", "_unique2", "unique_dim",
           "unique_consecutive", "bincount", "equal", "is_nonzero", "lift_fresh", "histc"}


class WaitsOnCuda(TorchDispatchMode):
    """Records the ATen operations that, on a CUDA tensor, wait for the device, each with the source line of
    latentatlas that called it."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        masks = name in ("index", "index_put_", "_index_put_impl_") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ()) if i is not None)
        counts = name == "repeat_interleave" and isinstance(args[0], torch.Tensor) and \
            kwargs.get("output_size") is None and func is not torch.ops.aten.repeat_interleave.self_int
        if name in WAITING or masks or counts:
            stack = traceback.extract_stack()
            line = _caller(stack)
            origin = next(f.filename for f in reversed(stack[:-1]) if "/torch/_" not in f.filename)
            if not (any(check in line for check in CPU_ONLY_CHECKS) or "/torch/optim/" in origin):
                self.found.append(f"{name} at {line}")
        return func(*args, **kwargs)


# Not waits on CUDA: F.one_hot checks its values on the host on the CPU only (CUDA relies on device asserts);
# torch's optimizers keep their step counts on the host unless capturable (reading one is a CPU read).
CPU_ONLY_CHECKS = ("one_hot(",)


def _caller(stack) -> str:
    """'file:line: code' of the innermost latentatlas frame of ``stack``."""
    for frame in reversed(stack):
        if "latentatlas" in frame.filename and "/tests/" not in frame.filename:
            return f"{frame.filename.split('latentatlas/')[-1]}:{frame.lineno}: {frame.line.split('#')[0].strip()}"
    return "outside latentatlas"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", MODELS.names())
def test_no_training_step_waits_for_the_device(tmp_path, monkeypatch, family, device):
    monkeypatch.setitem(trainer_module.HEALTH_EVERY, device, 10**9)   # the step log reads at the epoch end
    real_step, found = trainer_module._Trainer.step, []

    def watched_step(self, *args, **kwargs):
        if self.state.step == 0:
            return real_step(self, *args, **kwargs)   # a first step may set up (a VQ-VAE's k-means codebook)
        mode = WaitsOnCuda()
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("error")
        try:
            with mode:
                return real_step(self, *args, **kwargs)
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode(0)
            found.extend(mode.found)

    monkeypatch.setattr(trainer_module._Trainer, "step", watched_step)
    cfg = TrainConfig(epochs=1, batch_size=12, lr=1e-3, patience=None, device=device, progress=False)
    result = train(small_model(family), _labelled_images(), cfg, tmp_path, seed=0)
    assert result.steps >= 3
    assert not found, f"{family}: a training step waits for the device: " + "; ".join(sorted(set(found)))


def test_labels_outside_the_models_classes_are_named_before_any_step(tmp_path):
    """The steps do not read the labels' range, so the trainer checks the dataset's labels once."""
    data = _labelled_images()
    data.labels[5] = N_CLASSES
    cfg = TrainConfig(epochs=1, batch_size=12, lr=1e-3, patience=None, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"^data: tiny's labels must lie in \[0, 4\) for the model, got 0\.\.4$"):
        train(small_model("cvae"), data, cfg, tmp_path, seed=0)
    assert list(tmp_path.iterdir()) == []
