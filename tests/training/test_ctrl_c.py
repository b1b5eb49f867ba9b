"""Ctrl-C during training is a request acted on at the next batch, so that an interrupt landing inside a
finaliser (where Python prints "Exception ignored" and drops it) still stops the training."""

from __future__ import annotations

import gc
import os
import signal

import pytest

from latentatlas.training import train
from latentatlas.training.state import CtrlC, TrainingInterrupted

from .helpers import tiny_dataset, tiny_model, tiny_train_config


def _press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_is_a_request_the_second_raises_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="^$"):     # leaving the block with a request pending raises
        with CtrlC() as ctrl_c:
            _press_ctrl_c()
            assert ctrl_c.requested
            with pytest.raises(KeyboardInterrupt):
                ctrl_c.check()
            with pytest.raises(KeyboardInterrupt):
                _press_ctrl_c()
    assert signal.getsignal(signal.SIGINT) is before is signal.default_int_handler
    with CtrlC() as ctrl_c:                                 # no Ctrl-C: nothing raised
        pass
    assert not ctrl_c.requested


def test_an_application_handler_is_left_in_place():
    def own(signum, frame):
        own.calls += 1
    own.calls = 0
    previous = signal.signal(signal.SIGINT, own)
    try:
        with CtrlC() as ctrl_c:
            _press_ctrl_c()
        assert own.calls == 1 and not ctrl_c.requested
    finally:
        signal.signal(signal.SIGINT, previous)


class _PressesCtrlCWhenCollected:
    def __del__(self):
        _press_ctrl_c()


def test_ctrl_c_inside_a_finaliser_still_stops_the_training(tmp_path):
    """With the default handler the KeyboardInterrupt raised in __del__ is dropped and training runs on."""
    class Callback:
        def on_epoch_end(self, epoch, model):
            _PressesCtrlCWhenCollected()   # collected at once: Ctrl-C arrives inside its __del__
            gc.collect()
            return None

    with pytest.raises(TrainingInterrupted, match="interrupted in epoch 2"):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=50), tmp_path, seed=0, callbacks=[Callback()])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_after_the_last_batch_still_stops_the_command(tmp_path):
    class Callback:
        def on_epoch_end(self, epoch, model):
            if epoch == 2:
                _press_ctrl_c()
            return None

    with pytest.raises(TrainingInterrupted):
        train(tiny_model(), tiny_dataset(), tiny_train_config(epochs=2), tmp_path, seed=0, callbacks=[Callback()])
