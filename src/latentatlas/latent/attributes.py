"""Attribute vectors in latent space, arithmetic on codes, and how good each vector is.

Three estimators of the direction of a binary attribute from codes z (N, d) and labels y (N,) in {0, 1}:

- ``mean``: mean(z | y = 1) - mean(z | y = 0); with ``balance_on`` (N, K) nuisance attributes the
  difference is taken inside each cell of equal nuisance values and averaged over the cells, so an
  attribute correlated with y (e.g. Male with Smiling) does not leak into the vector;
- ``refined``: starting from the mean difference, an iterative (conjugate-gradient) refinement towards
  the Fisher direction Sigma_w^-1 (mu_1 - mu_0) (within-class covariance, ridge-regularised) that stops
  when the unit vector moves less than ``tol``;
- ``probe``: the weight vector of a logistic-regression probe (scikit-learn).

Vectors are returned as unit vectors (d,).
"""

from __future__ import annotations

import logging
from itertools import product
from typing import Callable

import numpy as np
import torch

from latentatlas.tensors import map_rows

log = logging.getLogger(__name__)

METHODS = ("mean", "refined", "probe")


def _prepare(z: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if z.ndim != 2:
        raise ValueError(f"z: expected codes (N, d), got shape {z.shape}")
    y = y.reshape(-1)
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"y: expected {z.shape[0]} labels, got {y.shape[0]}")
    values = set(np.unique(y).tolist())
    if values == {-1, 1}:
        y = (y > 0)
    elif not values <= {0, 1, False, True}:
        raise ValueError(f"y: expected binary labels 0/1 (or -1/+1), got values {sorted(values)[:5]}")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("y: expected both values of the attribute to occur, got only one")
    return z.astype(np.float64), y


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    if n == 0:
        raise ValueError("attribute vector is zero: the two groups have the same mean")
    return v / n


def mean_difference(z, y, *, balance_on=None, unit: bool = True) -> np.ndarray:
    """mean(z | y) - mean(z | not y), (d,).  With ``balance_on`` (N, K) binary nuisance attributes the
    difference is computed in each cell of equal nuisance values that holds both groups and averaged
    with weights proportional to the cell size."""
    z, y = _prepare(z, y)
    if balance_on is None:
        v = z[y].mean(axis=0) - z[~y].mean(axis=0)
        return _unit(v) if unit else v
    nuis = np.asarray(balance_on.cpu() if isinstance(balance_on, torch.Tensor) else balance_on)
    nuis = nuis.reshape(z.shape[0], -1) > 0
    total, weight = np.zeros(z.shape[1]), 0
    for cell in product((False, True), repeat=nuis.shape[1]):
        inside = (nuis == np.array(cell)).all(axis=1)
        pos, neg = inside & y, inside & ~y
        if pos.any() and neg.any():
            n = int(inside.sum())
            total += n * (z[pos].mean(axis=0) - z[neg].mean(axis=0))
            weight += n
    if weight == 0:
        raise ValueError("balance_on: no cell of the nuisance attributes holds both values of y")
    v = total / weight
    return _unit(v) if unit else v


def balanced_difference(z, y, balance_on=None) -> np.ndarray:
    """:func:`mean_difference` balanced on ``balance_on``, or the plain one (with a warning) when no cell of
    the nuisance attributes holds both groups. -> unit vector (d,)."""
    try:
        return mean_difference(z, y, balance_on=balance_on)
    except ValueError as err:
        if balance_on is None:
            raise
        log.warning("balancing failed (%s); using the plain mean difference", err)
        return mean_difference(z, y)


def group_gap(z, y, vector) -> float:
    """mean(z | y) . v - mean(z | not y) . v: how far apart the two groups of codes z (N, d) lie along
    ``vector`` (d,), the unit in which attribute steps and sweeps are scaled."""
    z, y = _prepare(z, y)
    return float((z[y].mean(axis=0) - z[~y].mean(axis=0)) @ np.asarray(vector, dtype=np.float64))


def refined_direction(z, y, *, tol: float = 1e-6, max_iter: int = 500, ridge: float = 1e-3,
                      balance_on=None) -> tuple[np.ndarray, int]:
    """Iterative refinement of the mean difference towards the Fisher direction (S_w + ridge I)^-1 delta:
    conjugate-gradient steps from 0, whose first iterate is the mean difference itself; stops when the
    unit vector changes by less than ``tol``. -> (unit vector (d,), iterations used)."""
    z, y = _prepare(z, y)
    delta = mean_difference(z, y, balance_on=balance_on, unit=False)
    zc = np.where(y[:, None], z - z[y].mean(axis=0), z - z[~y].mean(axis=0))
    s_w = zc.T @ zc / z.shape[0] + ridge * np.eye(z.shape[1])
    w, r = np.zeros_like(delta), delta.copy()
    p, prev = r.copy(), None
    for it in range(1, max_iter + 1):
        sp = s_w @ p
        alpha = (r @ r) / (p @ sp)
        w = w + alpha * p
        r_new = r - alpha * sp
        cur = _unit(w)
        if prev is not None and np.linalg.norm(cur - prev) < tol or np.linalg.norm(r_new) < 1e-14:
            return cur, it
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r, prev = r_new, cur
    log.warning("refined_direction: not converged to tol=%g after %d iterations", tol, max_iter)
    return cur, max_iter


def probe_direction(z, y, *, c: float = 1.0, seed: int = 0) -> np.ndarray:
    """Unit weight vector of an L2 logistic-regression probe predicting y from z. -> (d,)."""
    from sklearn.linear_model import LogisticRegression

    z, y = _prepare(z, y)
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z, y)
    return _unit(clf.coef_[0])


def attribute_vector(z, y, *, method: str = "mean", balance_on=None, **kwargs) -> np.ndarray:
    """Dispatch to one of :data:`METHODS`. -> unit vector (d,)."""
    if method == "mean":
        return mean_difference(z, y, balance_on=balance_on)
    if method == "refined":
        return refined_direction(z, y, balance_on=balance_on, **kwargs)[0]
    if method == "probe":
        return probe_direction(z, y, **kwargs)
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")


def auc(scores, y) -> float:
    """Area under the ROC curve of ``scores`` (N,) for binary ``y`` (Mann-Whitney U with mid-ranks)."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    _, yb = _prepare(s[:, None], y)
    ranks = rankdata(s)
    n_pos, n_neg = int(yb.sum()), int((~yb).sum())
    return float((ranks[yb].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def projection_auc(z, y, vector) -> float:
    """AUC of the projection z . v used as a classifier of y."""
    zz, _ = _prepare(z, y)
    return auc(zz @ np.asarray(vector, dtype=np.float64), y)


def arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Analogy on codes: a - b + c (e.g. smiling woman - woman + man), broadcasting over rows."""
    return a - b + c


def scale_sweep(z: torch.Tensor, vector: torch.Tensor | np.ndarray, scales: torch.Tensor) -> torch.Tensor:
    """Codes z (B, d) moved by s * v for each s in scales (S,). -> (B, S, d)."""
    v = torch.as_tensor(np.asarray(vector), dtype=z.dtype, device=z.device).reshape(1, 1, -1)
    if v.shape[2] != z.shape[1]:
        raise ValueError(f"vector: expected length {z.shape[1]}, got {v.shape[2]}")
    return z[:, None, :] + scales.to(z.dtype)[None, :, None] * v


Fn = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def judged_along_vector(classify: Fn, decode: Fn,
                        z: torch.Tensor, vector, scales: torch.Tensor) -> np.ndarray:
    """Mean attribute probability that ``classify`` (images -> (n,) probabilities) gives to the decoded
    codes z + s v, for each scale s. -> (S,)."""
    codes = scale_sweep(z, vector, scales)                     # (B, S, d)
    b, s, d = codes.shape
    probs = classify(decode(codes.reshape(b * s, d))).reshape(b, s)
    return probs.double().mean(dim=0).cpu().numpy()


def pixel_attribute_classifier(images: torch.Tensor, y, *, c: float = 0.1, max_rows: int = 3000, size: int = 16,
                               seed: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """A logistic-regression classifier of y trained on flattened images (N, C, H, W) in [0, 1]
    (average-pooled to at most size x size); returns images -> P(y = 1) (n,)."""
    from sklearn.linear_model import LogisticRegression

    def features(x: torch.Tensor) -> np.ndarray:
        x = x.float()
        if x.shape[-1] > size or x.shape[-2] > size:
            x = torch.nn.functional.adaptive_avg_pool2d(x, size)
        return x.reshape(x.shape[0], -1).cpu().numpy().astype(np.float32)

    feats, yb = _prepare(features(images[:max_rows]), np.asarray(y)[:max_rows])
    clf = LogisticRegression(C=c, max_iter=200, random_state=seed).fit(feats, yb)
    return lambda x: torch.from_numpy(clf.predict_proba(features(x))[:, 1])


class PixelJudge:
    """Pixel classifiers (:func:`pixel_attribute_classifier`), one per attribute, behind the interface of the
    celeba-attributes network: ``attribute_names`` and ``attribute_probs(x (B, C, H, W) in [0, 1]) -> (B, A)``.
    ``table`` (N, A0) holds the 0/1 values of ``names`` for ``images`` (N, C, H, W); a column with one value
    only is left out (with a warning)."""

    name = "pixel logistic regression"

    def __init__(self, images: torch.Tensor, table, names: list[str], *, seed: int = 0) -> None:
        table = np.asarray(table)
        self.attribute_names: list[str] = []
        self._classifiers: list[Callable[[torch.Tensor], torch.Tensor]] = []
        for j, name in enumerate(names):
            if table[:, j].min() == table[:, j].max():
                log.warning("pixel judge: %s has one value only in its training images; left out", name)
                continue
            self._classifiers.append(pixel_attribute_classifier(images, table[:, j], max_rows=len(images), seed=seed))
            self.attribute_names.append(name)

    def attribute_probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([clf(x).float() for clf in self._classifiers], dim=1)


@torch.no_grad()
def judge_probabilities(judge, images: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """``judge.attribute_probs`` on float images (n, C, H, W) in [0, 1], batched on the judge's device.
    -> float64 (n, A) on the CPU, columns in the order of ``judge.attribute_names``."""
    params = judge.parameters() if isinstance(judge, torch.nn.Module) else iter(())
    device = next(params, torch.empty(0)).device
    probs = map_rows(lambda x: judge.attribute_probs(x).double(), images, batch_size=batch_size, device=device)
    if probs.shape != (images.shape[0], len(judge.attribute_names)):
        raise ValueError(f"judge: expected attribute probabilities ({images.shape[0]}, "
                         f"{len(judge.attribute_names)}), got {tuple(probs.shape)}")
    return probs
