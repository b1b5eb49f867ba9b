"""How much of a fitted Gaussian mixture is data and how much is regularisation.

A component's effective number of codes is its responsibility mass ``n_k = weight_k * n``.  A full
covariance estimated from ``n_k`` codes has rank at most ``n_k - 1``: a component holding fewer codes
than the ``d`` dimensions is *starved*, and the directions its codes do not span carry only what was
added to the diagonal, ``reg_covar`` plus any jitter EM needed to keep it positive definite.  A diagonal
or spherical variance needs two codes; a tied covariance pools every code, so no component starves it.

The share of a covariance's trace that comes from the regularisation is
``d (reg_covar + jitter_k) / trace(S_k) = (reg_covar + jitter_k) / mean variance_k``.  It understates
how much the regularisation decides when the codes are spread unevenly over the dimensions (a VAE's
inactive dimensions): ``n_k`` codes span at most ``n_k - 1`` directions, so in at least
``d - (n_k - 1)`` of a full covariance's ``d`` directions all of the variance is regularisation.
"""

from __future__ import annotations

from typing import Any

import torch

from latentatlas.validate import check_choice, check_number


def mean_variances(covariances: torch.Tensor, covariance: str, k: int) -> torch.Tensor:
    """Mean variance per dimension (trace / d) of each component: (k,) from sklearn-shaped covariances
    (full (k, d, d), diag (k, d), tied (d, d), spherical (k,))."""
    check_choice("covariance", covariance, ("full", "diag", "tied", "spherical"))
    if covariance == "full":
        return covariances.diagonal(dim1=-2, dim2=-1).mean(-1)
    if covariance == "diag":
        return covariances.mean(-1)
    if covariance == "tied":
        return covariances.diagonal().mean().expand(k).clone()
    return covariances.clone()


def starved_below(covariance: str, d: int) -> int:
    """Components with fewer codes than this have a singular empirical covariance (0: none can)."""
    check_choice("covariance", covariance, ("full", "diag", "tied", "spherical"))
    return {"full": d, "diag": 2, "spherical": 2, "tied": 0}[covariance]


def component_diagnostics(n_k: torch.Tensor, variances: torch.Tensor, reg_covar: float, added: torch.Tensor,
                          covariance: str, d: int) -> dict[str, Any]:
    """Per-component ``n_k`` and regularisation share of the trace (lists of k floats) and their summary
    over the starved components.  ``n_k`` (codes per component), ``variances`` (mean variance,
    regularisation included) and ``added`` (jitter beyond ``reg_covar``) are (k,)."""
    check_number("reg_covar", reg_covar, low=0)
    n_k = n_k.double().cpu()
    reg = reg_covar + added.double().cpu()
    share = (reg / variances.double().cpu()).clamp(max=1.0)
    threshold = starved_below(covariance, d)
    starved = n_k < threshold
    out: dict[str, Any] = {
        "n_k": n_k.tolist(), "reg_share": share.tolist(),
        "summary": {"n_k_min": float(n_k.min()), "n_k_median": float(n_k.median()), "starved_below": threshold,
                    "n_starved": int(starved.sum())}}
    if bool(starved.any()):
        if covariance == "full":
            unspanned = (d - (n_k[starved] - 1)).clamp(0, d)
            out["summary"]["starved_unspanned_mean"] = float(unspanned.mean())
        out["summary"].update(starved_reg_share_mean=float(share[starved].mean()),
                              n_starved_jittered=int((added.cpu()[starved] > 0).sum()),
                              starved_jitter_max=float(added.cpu()[starved].max()))
    return out


def starvation_warning(summary: dict[str, Any], k: int, d: int, reg_covar: float) -> str | None:
    """The one-line warning for a mixture with starved components (``summary`` from
    ``component_diagnostics``), or None when no component is starved."""
    n = summary.get("n_starved", 0)
    if not n:
        return None
    below = summary["starved_below"]
    fewer = f"fewer codes than the {d} latent dimensions" if below == d else f"fewer than {below} codes"
    text = (f"{n} of {k} components hold {fewer} (smallest {summary['n_k_min']:.1f}); their covariances are set "
            f"by the regularisation (reg_covar={reg_covar:g}: on average {100 * summary['starved_reg_share_mean']:.1f} "
            f"% of the trace")
    if "starved_unspanned_mean" in summary:
        text += (f", and all of the variance in the {summary['starved_unspanned_mean']:.0f} of {d} directions "
                 "their codes do not span")
    if summary["n_starved_jittered"]:
        text += (f"; {summary['n_starved_jittered']} of them needed extra jitter up to "
                 f"{summary['starved_jitter_max']:.3g}")
    return text + ")"


def extreme_components(n_k: torch.Tensor, per_end: int) -> list[int]:
    """Indices of the ``per_end`` most populated components (most first), then the ``per_end`` least
    populated (least last); every component, most populated first, when there are at most 2 per_end."""
    check_number("per_end", per_end, low=1, integer=True)
    order = torch.argsort(torch.as_tensor(n_k, dtype=torch.float64), descending=True, stable=True).tolist()
    return order if len(order) <= 2 * per_end else order[:per_end] + order[-per_end:]
