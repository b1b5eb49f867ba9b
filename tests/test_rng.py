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
