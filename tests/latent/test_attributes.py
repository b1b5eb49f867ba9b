"""Attribute vectors on synthetic codes with a known direction and a correlated nuisance attribute."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from latentatlas.latent import attributes as at

D = 8


def _synthetic(n=4000, seed=0):
    """y shifts codes along e0 by 3, the nuisance m (80% agreement with y) along e1 by 3."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    m = np.where(rng.random(n) < 0.8, y, ~y)
    z = rng.normal(size=(n, D))
    z[:, 0] += 3 * y
    z[:, 1] += 3 * m
    return z, y.astype(int), m.astype(int)


def test_plain_mean_difference_leaks_and_balanced_does_not():
    z, y, m = _synthetic()
    plain = at.mean_difference(z, y)
    balanced = at.mean_difference(z, y, balance_on=m[:, None])
    assert np.linalg.norm(plain) == pytest.approx(1.0) and np.linalg.norm(balanced) == pytest.approx(1.0)
    assert abs(plain[1]) > 0.4                      # the nuisance leaks into the plain vector
    assert balanced[0] > 0.99 and abs(balanced[1]) < 0.05


def test_refined_direction_reaches_the_fisher_direction():
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.random(n) < 0.5
    cov = np.diag([1.0, 4.0, 0.5, 1.0])
    cov[0, 1] = cov[1, 0] = 1.5
    z = rng.multivariate_normal(np.zeros(4), cov, size=n) + np.outer(y, [1.0, 1.0, 0.0, 0.0])
    v, iters = at.refined_direction(z, y, tol=1e-9, max_iter=5000, ridge=1e-3)
    zc = np.where(y[:, None], z - z[y].mean(0), z - z[~y].mean(0))
    s_w = zc.T @ zc / n + 1e-3 * np.eye(4)
    fisher = np.linalg.solve(s_w, z[y].mean(0) - z[~y].mean(0))
    np.testing.assert_allclose(v, fisher / np.linalg.norm(fisher), atol=1e-6)
    assert 1 < iters < 5000 and np.linalg.norm(v) == pytest.approx(1.0)
    # the refinement beats the mean difference as a classifier when the noise is correlated
    assert at.projection_auc(z, y, v) > at.projection_auc(z, y, at.mean_difference(z, y)) + 0.01


def test_probe_direction_and_dispatch():
    z, y, _ = _synthetic()
    z[:, 1] = np.random.default_rng(2).normal(size=len(z))      # no nuisance: the probe finds e0
    v = at.attribute_vector(z, y, method="probe")
    assert v[0] > 0.95 and np.linalg.norm(v) == pytest.approx(1.0)
    for method in at.METHODS:
        assert at.attribute_vector(z, y, method=method)[0] > 0.95
    with pytest.raises(ValueError, match="method"):
        at.attribute_vector(z, y, method="nope")


def test_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + y, 1)             # rounding creates ties
    assert at.auc(scores, y) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert at.auc(scores, 2 * y - 1) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    z, yy, _ = _synthetic()
    v = at.mean_difference(z, yy)
    assert at.projection_auc(z, yy, v) == pytest.approx(roc_auc_score(yy, z @ v), abs=1e-12)


def test_arithmetic_sweep_and_judge():
    a, b, c = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 5.0]])
    torch.testing.assert_close(at.arithmetic(a, b, c), torch.tensor([[0.0, 7.0]]))
    sweep = at.scale_sweep(torch.zeros(2, 2), np.array([1.0, 0.0]), torch.tensor([-1.0, 0.0, 2.0]))
    assert sweep.shape == (2, 3, 2)
    torch.testing.assert_close(sweep[1, 2], torch.tensor([2.0, 0.0]))
    probs = at.judged_along_vector(lambda x: torch.sigmoid(x[:, 0]), lambda z: z, torch.zeros(4, 2),
                                   np.array([1.0, 0.0]), torch.tensor([-2.0, 0.0, 2.0]))
    np.testing.assert_allclose(probs, torch.sigmoid(torch.tensor([-2.0, 0.0, 2.0])).numpy(), rtol=1e-6)


def test_pixel_classifier_learns_a_bright_half():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 8, 8, generator=g) * 0.5
    y = (torch.rand(200, generator=g) < 0.5).long()
    x[y == 1, :, :4] += 0.5
    clf = at.pixel_attribute_classifier(x, y.numpy(), c=1.0)
    p = clf(x).numpy()
    assert roc_auc_score(y.numpy(), p) > 0.95


def test_validation():
    with pytest.raises(ValueError, match="both values"):
        at.mean_difference(np.zeros((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="binary"):
        at.mean_difference(np.zeros((4, 2)), np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="y: expected 4"):
        at.mean_difference(np.zeros((4, 2)), np.array([0, 1]))


def test_pixel_judge_has_the_attribute_network_interface():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(300, 1, 8, 8, generator=g) * 0.5
    table = (torch.rand(300, 2, generator=g) < 0.5).long().numpy()
    x[table[:, 0] == 1, :, :4] += 0.5                          # attribute "top": a bright top half
    x[table[:, 1] == 1, :, :, :4] += 0.5                       # attribute "left": a bright left half
    table = np.concatenate([table, np.ones((300, 1), dtype=int)], axis=1)   # "always": one value only
    judge = at.PixelJudge(x, table, ["top", "left", "always"], seed=0)
    assert judge.attribute_names == ["top", "left"]            # a constant column cannot be learned
    probs = at.judge_probabilities(judge, x, batch_size=64)
    assert probs.shape == (300, 2) and probs.dtype == torch.float64
    torch.testing.assert_close(probs, judge.attribute_probs(x).double())
    assert roc_auc_score(table[:, 0], probs[:, 0]) > 0.95 and roc_auc_score(table[:, 1], probs[:, 1]) > 0.95

    class Wrong:
        attribute_names = ["a", "b", "c"]

        def attribute_probs(self, images):
            return torch.zeros(len(images), 2)

    with pytest.raises(ValueError, match="judge"):
        at.judge_probabilities(Wrong(), x)


def test_group_gap_is_the_distance_of_the_group_means_along_the_vector():
    z = np.array([[1.0, 5.0], [3.0, 7.0], [-1.0, 0.0], [-3.0, 2.0]])
    y = np.array([1, 1, 0, 0])                                  # means (2, 6) and (-2, 1)
    assert at.group_gap(z, y, [1.0, 0.0]) == pytest.approx(4.0)
    assert at.group_gap(z, y, [0.6, 0.8]) == pytest.approx(0.6 * 4 + 0.8 * 5)
    with pytest.raises(ValueError, match="y: expected both values"):
        at.group_gap(z, np.ones(4), [1.0, 0.0])
