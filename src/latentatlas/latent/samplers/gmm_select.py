"""Choosing the number of mixture components: a grid scored by BIC, AIC or held-out log-likelihood
(``select_k``), or divisive growth that splits components while held-out likelihood improves
(``hierarchical``).  Both return the curve the report plots.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from latentatlas.latent.samplers.base import check_codes, default_generator
from latentatlas.rng import to_device
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

SPLIT_CANDIDATES = 3   # components tried per split round (largest weight x variance first)
MIN_GAIN = 1e-4        # nats per held-out code a split must gain, and at least
SIGNIFICANCE = 2.0     # this many standard errors of the paired per-code gain


def _split(z: torch.Tensor, val_fraction: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    n = z.shape[0]
    n_val = int(round(val_fraction * n))
    if val_fraction == 0 or n_val == 0:
        return z, None
    perm = to_device(torch.randperm(n, generator=g), z.device)
    return z[perm[n_val:]], z[perm[:n_val]]


def select_k(z: torch.Tensor, ks: list[int], *, criterion: str = "bic", generator: torch.Generator | None = None,
             val_fraction: float = 0.2, **gmm_params: Any):
    """Fit a GMM for each k on a training split, score it, refit the best k on all codes.

    Returns ``(best, curve)``: the fitted GMM and ``[{k, bic, aic, heldout_ll, train_ll, n_iter}]``
    (bic/aic on the training split, heldout_ll the mean log-likelihood of the validation split).
    """
    from latentatlas.latent.samplers.gmm import GMM, parse_k

    z = check_codes(z, "z", min_rows=2)
    check_choice("criterion", criterion, ("bic", "aic", "heldout"))
    check_number("val_fraction", val_fraction, low=0)
    grid = parse_k(list(ks))
    if criterion == "heldout" and not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: criterion='heldout' needs a value in (0, 1), got {val_fraction!r}")
    for key in ("k", "hierarchical", "criterion", "val_fraction"):
        gmm_params.pop(key, None)
    g = default_generator(generator, gmm_params.get("seed", 0))
    train, val = _split(z, val_fraction, g)
    if criterion == "heldout" and val is None:
        raise ValueError(f"val_fraction: {val_fraction} leaves no validation codes out of {z.shape[0]}")
    if grid[0] > train.shape[0]:
        raise ValueError(f"ks: every k exceeds the {train.shape[0]} training codes, got {grid}")
    curve = []
    for k in [k for k in grid if k <= train.shape[0]]:
        with _candidate():
            m = GMM(k=k, **gmm_params).fit(train, generator=g)
        curve.append({"k": k, "bic": m.bic(train), "aic": m.aic(train),
                      "heldout_ll": m.score(val) if val is not None else None,
                      "train_ll": m.score(train), "n_iter": m.n_iter_})
        log.debug("select_k: %s", curve[-1])
    key = {"bic": lambda r: r["bic"], "aic": lambda r: r["aic"], "heldout": lambda r: -r["heldout_ll"]}
    best_k = min(curve, key=key[criterion])["k"]
    log.info("gmm: %s picks k=%d of %s", criterion, best_k, [row["k"] for row in curve])
    best = GMM(k=best_k, **gmm_params).fit(z, generator=g)
    best.selection_, best.selection_criterion_ = curve, criterion
    return best, curve


_candidate_fit = threading.local()   # .on: this thread is fitting a candidate k


class _DemoteCandidates(logging.Filter):
    """The gmm logger's records of a candidate's fit, at debug level: they are about a model that may not be
    kept (a starved component at k=100); the chosen k's final fit says its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_candidate_fit, "on", False) and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


logging.getLogger("latentatlas.latent.samplers.gmm").addFilter(_DemoteCandidates())


@contextmanager
def _candidate() -> Iterator[None]:
    """Inside, this thread's gmm fits are candidates (see _DemoteCandidates)."""
    _candidate_fit.on = True
    try:
        yield
    finally:
        _candidate_fit.on = False


def _split_init(model, c: int) -> dict:
    """Initial parameters with component ``c`` replaced by two halves along its principal axis."""
    w, mu, cov, kind = model.weights_, model.means_, model.covariances_, model.covariance
    d = mu.shape[1]
    if kind in ("full", "tied"):
        evals, evecs = torch.linalg.eigh(cov[c] if kind == "full" else cov)
        axis = evecs[:, -1] * evals[-1].clamp_min(0).sqrt()
    else:
        var = cov[c] if kind == "diag" else cov[c].expand(d)
        axis = torch.zeros_like(mu[c])
        j = int(var.argmax())
        axis[j] = var[j].sqrt()
    weights = torch.cat([w, w[c:c + 1] / 2])
    weights[c] = w[c] / 2
    means = torch.cat([mu, (mu[c] - 0.5 * axis)[None]])
    means[c] = mu[c] + 0.5 * axis
    covs = cov if kind == "tied" else torch.cat([cov, cov[c:c + 1]])
    return {"weights": weights, "means": means, "covariances": covs}


def hierarchical(z: torch.Tensor, k_max: int, *, generator: torch.Generator | None = None,
                 val_fraction: float = 0.2, **gmm_params: Any):
    """Start from one component and split the best of the heaviest components while the held-out
    log-likelihood improves by more than two standard errors of the paired per-code gain (and
    k < k_max); the final mixture is refined by EM on all codes.

    Returns ``(model, curve)`` with ``curve = [{k, heldout_ll, train_ll, split}]``.
    """
    from latentatlas.latent.samplers.gmm import GMM

    z = check_codes(z, "z", min_rows=2)
    check_number("k_max", k_max, low=1, integer=True)
    for key in ("k", "hierarchical", "criterion", "val_fraction"):
        gmm_params.pop(key, None)
    g = default_generator(generator, gmm_params.get("seed", 0))
    train, val = _split(z, val_fraction, g)
    if val is None:
        raise ValueError(f"val_fraction: hierarchical mode needs held-out codes, got {val_fraction!r}")
    model = GMM(k=1, **gmm_params).fit(train, generator=g)
    current = model.score_samples(val)
    curve = [{"k": 1, "heldout_ll": float(current.mean()), "train_ll": model.lower_bound_, "split": None}]
    while model.n_components_ < min(k_max, train.shape[0]):
        order = torch.argsort(model.weights_ * model.component_variances(), descending=True)
        tries = []
        for c in order[:SPLIT_CANDIDATES].tolist():
            m = GMM(k=model.n_components_ + 1, **gmm_params).fit(train, generator=g, init=_split_init(model, c))
            tries.append((m.score_samples(val), c, m))
        scores, c, m = max(tries, key=lambda t: float(t[0].mean()))
        gain = scores - current  # paired per held-out code
        if float(gain.mean()) <= max(MIN_GAIN, SIGNIFICANCE * float(gain.std()) / len(gain) ** 0.5):
            break
        model, current = m, scores
        curve.append({"k": m.n_components_, "heldout_ll": float(scores.mean()), "train_ll": m.lower_bound_,
                      "split": c})
        log.debug("hierarchical: %s", curve[-1])
    log.info("gmm: hierarchical splitting stops at k=%d", model.n_components_)
    init = {"weights": model.weights_, "means": model.means_, "covariances": model.covariances_}
    final = GMM(k=model.n_components_, **gmm_params).fit(z, generator=g, init=init)
    final.selection_, final.selection_criterion_ = curve, "hierarchical"
    return final, curve


def auto_grid(n: int, d: int, *, val_fraction: float = 0.0) -> list[int]:
    """The k that ``k=auto`` tries on n codes of d dimensions: AUTO_KS up to one component per 2 (d + 1)
    codes fitted (a full covariance has d (d + 1) / 2 parameters)."""
    from latentatlas.latent.samplers.gmm import AUTO_KS

    limit = max(1, int(n * (1 - val_fraction)) // (2 * (d + 1)))
    return [v for v in AUTO_KS if v <= limit] or [1]


def fit_selected(gmm, z: torch.Tensor, k, g: torch.Generator):
    """The fitted GMM for a spec with ``k`` a grid (None: automatic) or ``hierarchical=true``."""
    params = {key: v for key, v in gmm.get_params().items()
              if key not in ("k", "hierarchical", "criterion", "val_fraction")}
    if gmm.hierarchical:
        k_max = k if isinstance(k, int) else max(k or [50])
        return hierarchical(z, k_max, generator=g, val_fraction=gmm.val_fraction, **params)[0]
    if k is None:
        k = auto_grid(z.shape[0], z.shape[1], val_fraction=gmm.val_fraction)
    return select_k(z, k, criterion=gmm.criterion, generator=g, val_fraction=gmm.val_fraction, **params)[0]
