"""The step log: the training steps' losses and terms, read to the host every few phase steps, checked in step
order and averaged by rows over the epoch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from latentatlas.training.state import LossGrowth, RowMeans, StepLog, TrainState

ONE_PROCESS = SimpleNamespace(active=False)


class CountingMeans(RowMeans):
    """A RowMeans that counts its reads to the host."""

    reads = 0

    def read(self):
        if self.pending:
            CountingMeans.reads += 1
        return super().read()


def _log(every: int, divergence=lambda terms: None) -> StepLog:
    log = StepLog(LossGrowth(None, False), divergence, every)
    log.means = CountingMeans()
    return log


def _steps():
    """A two-phase model's phase steps: (phase, prefix, loss, terms, rows); the critic runs twice a step."""
    return [("critic", "critic_", 1.5, {"real": 0.25}, 8), ("critic", "critic_", 0.5, {"real": 0.75}, 8),
            ("generator", "generator_", 2.0, {}, 8), ("critic", "critic_", 3.0, {"real": -1.0}, 5),
            ("generator", "generator_", 4.0, {}, 5)]


def test_the_epoch_means_weigh_each_phase_step_by_its_rows_and_the_terms_are_read_every_few_steps():
    CountingMeans.reads = 0
    log, state = _log(every=2), TrainState()
    due = []
    for phase, prefix, loss, terms, rows in _steps():
        log.watch(phase, prefix, torch.tensor(loss), {k: torch.tensor(v) for k, v in terms.items()}, rows, state)
        due.append(log.due)
        if log.due:
            assert log.read(state, rank=0) is None
    assert due == [False, True, False, True, False] and CountingMeans.reads == 2
    got = log.epoch_means(ONE_PROCESS, torch.device("cpu"))
    assert CountingMeans.reads == 3   # the last pending phase step, at the epoch's end
    for key in ("critic_loss", "critic_real", "generator_loss"):
        logged = [(terms.get(key[len(prefix):], loss) if key.endswith("real") else loss, rows)
                  for phase, prefix, loss, terms, rows in _steps() if key.startswith(prefix)]
        assert got[key] == pytest.approx(sum(v * r for v, r in logged) / sum(r for _, r in logged), rel=1e-12)
    assert set(got) == {"critic_loss", "critic_real", "generator_loss"}
    assert log.epoch_means(ONE_PROCESS, torch.device("cpu")) == {}   # the next epoch starts afresh


def test_a_non_finite_loss_among_several_read_together_is_named_at_its_own_step():
    log, state = _log(every=4), TrainState(epoch=2)
    for step, loss in enumerate([1.0, 2.0, float("nan"), 1.0]):
        state.step = step
        log.watch("main", "", torch.tensor(loss), {"recon": torch.tensor(loss)}, 4, state)
    assert log.read(state, rank=1) == "non-finite main loss (nan on rank 1) at epoch 3, step 3"


def test_the_models_divergence_check_sees_the_phases_terms_without_their_prefix():
    seen = []

    def divergence(terms):
        seen.append(terms)
        return "the critic exploded" if terms.get("real", 0) > 100 else None

    log, state = _log(every=1, divergence=divergence), TrainState()
    log.watch("critic", "critic_", torch.tensor(1.0), {"real": torch.tensor(3.0)}, 2, state)
    assert log.read(state, rank=0) is None and seen == [{"real": 3.0}]
    state.step = 1
    log.watch("critic", "critic_", torch.tensor(1.0), {"real": torch.tensor(1e4)}, 2, state)
    assert log.read(state, rank=0) == "the critic exploded at epoch 1, step 2"
