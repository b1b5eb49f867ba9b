"""Random draws that take a generator: categorical rows by inverse CDF."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from latentatlas.rng import categorical

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_categorical_draws_follow_each_rows_probabilities(device):
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 0.0, 1.0], [0.1, 0.6, 0.3, 0.0]], dtype=torch.float64)
    n = 30000
    rows = probs.repeat_interleave(n, 0).to(device)
    draws = categorical(rows, generator=torch.Generator().manual_seed(0))
    assert draws.device.type == device and draws.dtype == torch.long and draws.shape == (3 * n,)
    again = categorical(rows, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)                                       # same seed, same draws
    for r in range(3):
        counts = torch.bincount(draws[r * n:(r + 1) * n].cpu(), minlength=4)
        assert int(counts[probs[r] == 0].sum()) == 0                       # never an impossible category
        keep = probs[r] > 0
        if int(keep.sum()) > 1:                                            # chi-square goodness of fit
            p_value = stats.chisquare(counts[keep].numpy(), n * probs[r][keep].numpy()).pvalue
            assert p_value > 1e-3, (r, counts)


def test_categorical_reads_float32_rows_whose_sum_is_not_exactly_one():
    probs = torch.softmax(torch.randn(5000, 512, generator=torch.Generator().manual_seed(1)), dim=1)
    draws = categorical(probs, generator=torch.Generator().manual_seed(2))
    assert int(draws.min()) >= 0 and int(draws.max()) < 512


def test_weights_from_seeds_and_restores_only_the_cpu_generator(monkeypatch):
    """torch.manual_seed would also reseed every GPU's generator, which fork_rng(devices=[]) does not restore."""
    from latentatlas.rng import weights_from

    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    state = torch.get_rng_state()
    with weights_from(torch.Generator().manual_seed(5)):
        first = torch.nn.Linear(3, 2).weight.detach().clone()
    with weights_from(torch.Generator().manual_seed(5)):
        second = torch.nn.Linear(3, 2).weight.detach().clone()
    assert torch.equal(first, second) and torch.equal(torch.get_rng_state(), state) and reseeded == []
