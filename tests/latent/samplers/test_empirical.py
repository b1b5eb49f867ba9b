"""empirical: draws are the training codes themselves, without replacement."""

import pytest
import torch

from latentatlas.latent.samplers import build_sampler


def _codes(n: int = 40) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_draws_are_distinct_training_codes_until_every_code_is_used():
    z = _codes()
    s = build_sampler("empirical").fit(z)
    rows = lambda x: {tuple(r.tolist()) for r in x}   # noqa: E731
    draw = s.sample(25, generator=torch.Generator().manual_seed(1))
    assert len(rows(draw)) == 25 and rows(draw) <= rows(z)          # distinct, all from the codes
    many = s.sample(100, generator=torch.Generator().manual_seed(1))   # 2.5 rounds
    counts = torch.unique(many, dim=0, return_counts=True)[1]
    assert len(counts) == 40 and counts.min() == 2 and counts.max() == 3


def test_has_no_density():
    s = build_sampler("empirical").fit(_codes())
    with pytest.raises(NotImplementedError, match="no density"):
        s.score_samples(_codes(5))
