"""The Judge against closed forms: Fréchet distance of a shifted Gaussian sample, memorisation of copies
and of fresh draws, realism inside and outside the real manifold."""

import pytest
import torch

from latentatlas.metrics.prdc import prdc
from latentatlas.studies import Judge
from latentatlas.studies.judge import COPY_QUANTILE


@pytest.fixture
def gaussian_judge():
    g = torch.Generator().manual_seed(0)
    train, real = torch.randn(3000, 3, generator=g), torch.randn(2000, 3, generator=g)
    return Judge(lambda x: x, real, train), g


def test_frechet_of_a_shift_is_its_squared_length(gaussian_judge):
    judge, _ = gaussian_judge
    shift = torch.tensor([1.0, -2.0, 0.5])
    scores = judge.score(judge.real + shift)          # same covariance: FD = ||shift||^2 exactly
    assert scores["frechet"] == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    assert judge.score(judge.real)["frechet"] == pytest.approx(0.0, abs=1e-8)


def test_prdc_matches_the_metric_function(gaussian_judge):
    judge, g = gaussian_judge
    fake = torch.randn(500, 3, generator=g) * 1.5
    expected = prdc(judge.real, fake, 3, k_dc=5)
    got = judge.score(fake)
    for key in ("precision", "recall", "density", "coverage"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6)


def test_copies_of_training_points_are_memorised_and_fresh_draws_are_not(gaussian_judge):
    judge, g = gaussian_judge
    copies = judge.train[:500]
    assert judge.score(copies)["copy_fraction"] == 1.0
    assert judge.score(copies)["nn_train_ratio"] == 0.0
    without = judge.score(copies, memorisation=False)
    assert "copy_fraction" not in without and without["frechet"] == judge.score(copies)["frechet"]
    fresh = judge.score(torch.randn(4000, 3, generator=g))
    assert fresh["copy_fraction"] == pytest.approx(COPY_QUANTILE, abs=0.02)   # as new as held-out data
    assert fresh["nn_train_ratio"] == pytest.approx(1.0, abs=0.1)


def test_realism_is_at_least_one_on_the_real_points_and_small_far_away(gaussian_judge):
    judge, _ = gaussian_judge
    assert bool((judge.realism(judge.real[:200]) >= 1.0).all())
    far = judge.real[:50] + 100.0
    assert float(judge.realism(far).max()) < 0.1


def test_classifier_logits_give_confidence_and_class_coverage():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(300, 2, generator=g)

    def features(x):       # "logits" that put every sample in class 0 with probability e^5 / (e^5 + 1)
        return x, torch.tensor([[5.0, 0.0]]).expand(x.shape[0], 2)

    judge = Judge(features, real, class_shares=torch.tensor([0.5, 0.5]))
    scores = judge.score(real[:100])
    assert scores["confidence"] == pytest.approx(torch.tensor([5.0, 0.0]).softmax(0)[0].item(), rel=1e-6)
    assert scores["classes_covered"] == 1
