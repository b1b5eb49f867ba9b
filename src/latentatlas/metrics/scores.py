"""Small closed-form scores: the IS-style score from classifier logits, reconstruction MSE and PSNR."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def inception_score(logits: Any, *, splits: int = 10) -> dict[str, float]:
    """IS-style score exp(E_x KL(p(y|x) || p(y))) from logits (N, K), mean and std over ``splits``
    consecutive parts (Salimans et al. 2016; here with latentatlas' classifier, not Inception)."""
    lg = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).double()
    if lg.ndim != 2 or lg.shape[0] < splits or splits < 1:
        raise ValueError(f"logits: expected (N, K) with N >= splits ({splits}), got shape {tuple(lg.shape)}")
    log_p = torch.log_softmax(lg, dim=1)
    scores = []
    for part in torch.tensor_split(log_p, splits):
        log_py = torch.logsumexp(part, dim=0) - math.log(part.shape[0])   # log of the marginal p(y)
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(float(kl.exp()))
    s = torch.tensor(scores, dtype=torch.float64)
    return {"is": float(s.mean()), "is_std": float(s.std()) if splits > 1 else 0.0}


def _pair(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != x_hat.shape or x.ndim < 2:
        raise ValueError(f"x_hat: expected the shape of x {tuple(x.shape)} (N, ...), got {tuple(x_hat.shape)}")
    def to(t: torch.Tensor) -> torch.Tensor:   # each argument by its own dtype
        return t.double() / 255.0 if t.dtype == torch.uint8 else t.double()

    return to(x).flatten(1), to(x_hat).flatten(1)


def reconstruction_errors(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, float]:
    """MSE and PSNR between images x and reconstructions x_hat (N, C, H, W), floats in [0, 1] or uint8.

    ``mse`` is the mean over all pixels; ``psnr`` is the mean over images of 10 log10(1 / mse_i)
    (an exact reconstruction has infinite PSNR and is capped at 100 dB)."""
    a, b = _pair(x, x_hat)
    per_image = ((a - b) ** 2).mean(1)
    psnr = 10.0 * torch.log10(1.0 / per_image.clamp_min(1e-10))
    return {"mse": float(per_image.mean()), "psnr": float(psnr.mean())}
