"""``ddpm``: a small diffusion model on the codes (Ho et al. 2020) as an ex-post sampler.

An MLP predicts the noise eps from (x_t, t) with x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, x_0 the
standardised codes, trained on |eps - eps_hat|^2 with t uniform in 1..T; the schedule is the cosine one
(Nichol & Dhariwal 2021: abar_t = cos^2(((t/T + s) / (1 + s)) pi / 2) / cos^2(s pi / 2 / (1 + s)), betas
clipped at 0.999).  Sampling is the DDIM update (Song et al. 2021) from step t to an earlier step s:
x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps + sigma z, x0 the predicted codes (clipped) and eps
the noise they imply, sigma^2 = eta^2 (1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s).  ``method=ddim``
runs it on ``sample_steps`` evenly spaced steps (default: a quarter of T) with ``eta`` (0: deterministic;
1: ancestral steps of that stride); ``method=ddpm`` is the ancestral sampler of Ho et al. 2020, which is the
update at eta = 1 on all T steps (sigma^2 is then the posterior variance beta~_t = beta_t (1 - abar_{t-1}) /
(1 - abar_t)).  The default, eta = 1 on 50 of the 200 steps, draws 4x faster than ``method=ddpm`` with
Fréchet distances as low (study ``diffusion-steps``, bench/RESULTS.md); deterministic DDIM (eta = 0) scored
worse after a long fit.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from latentatlas.latent.samplers.base import SAMPLERS
from latentatlas.validate import check_choice, check_number
from latentatlas.latent.samplers.learned import LEARNED_DEFAULTS, LearnedSampler
from latentatlas.rng import randn, to_device


def cosine_alpha_bar(steps: int, s: float = 0.008) -> torch.Tensor:
    """abar_t for t = 0..T (T + 1 values, abar_0 = 1), float64, from the cosine schedule with betas <= 0.999."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


@functools.lru_cache(maxsize=16)
def alpha_bar_on(steps: int, device: torch.device) -> torch.Tensor:
    """:func:`cosine_alpha_bar` as float32 on ``device``, made once (a copy each training iteration would wait
    for a GPU each time); not to be changed in place."""
    return cosine_alpha_bar(steps).to(device=device, dtype=torch.float32)


def time_features(t: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal features (B, size) of diffusion times t / T in [0, 1] (B,), frequencies 1..1000."""
    half = size // 2
    freq = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device, dtype=dtype) / half)
    angle = 1000.0 * t[:, None].to(dtype) * freq[None]
    return torch.cat([angle.sin(), angle.cos()], dim=1)


class Denoiser(nn.Module):
    """eps_hat(x_t, t): (B, d), (B,) -> (B, d), a residual MLP of ``depth`` blocks of ``hidden`` units; t's
    sinusoidal features pass through a small MLP and are added inside every block (the time-conditioned
    residual block of image diffusion models, in one dimension)."""

    def __init__(self, d: int, hidden: int, depth: int, embed: int = 32) -> None:
        super().__init__()
        self.embed = embed
        self.inp = nn.Linear(d, hidden)
        self.time = nn.Sequential(nn.Linear(embed, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.blocks = nn.ModuleList(TimeBlock(hidden) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, emb = self.inp(x), self.time(time_features(t, self.embed, x.dtype))
        for block in self.blocks:
            h = h + block(h, emb)
        return self.out(h)


class TimeBlock(nn.Module):
    """h, emb (B, hidden) -> the residual (B, hidden): linear(SiLU(linear(SiLU(LayerNorm(h))) + emb))."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm, self.first, self.second = nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.second(self.act(self.first(self.act(self.norm(h))) + emb))


class FirstLayerDenoiser(nn.Module):
    """The denoiser before 2026-12 (``time_embedding="first-layer"``): t's features enter only with x_t at the
    input; each residual block is one SiLU and linear.  (B, d), (B,) -> (B, d)."""

    def __init__(self, d: int, hidden: int, depth: int, embed: int = 32) -> None:
        super().__init__()
        self.embed = embed
        self.inp = nn.Linear(d + embed, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x, time_features(t, self.embed, x.dtype)], dim=1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


DENOISERS = {"every-block": Denoiser, "first-layer": FirstLayerDenoiser}   # by ``time_embedding``


@SAMPLERS.register("ddpm")
class DDPM(LearnedSampler):
    """Diffusion sampler: ``steps`` T, an MLP of ``depth`` residual layers of ``hidden`` units, ``method``
    ddpm or ddim with ``sample_steps`` and ``eta``; plus the learned-sampler settings (iters, batch_size, lr)."""

    name = "ddpm"
    # on full MNIST AE codes (bench/RESULTS.md): lr 1e-3 -> 2e-3 took FD 4.58 to 3.67 (one draw); hidden 256 and
    # batch 256 -> 512 took the mean of 9 scores from 3.45 to 2.50 (the GMM's 2.56), for a 160 s fit, not 44 s
    defaults = dict(steps=200, hidden=512, depth=3, time_embedding="every-block", method="ddim",
                    sample_steps=None, eta=1.0,
                    **{**LEARNED_DEFAULTS, "lr": 2e-3, "batch_size": 512})
    saved_before = dict(time_embedding="first-layer", eta=0.0)    # samplers saved before these settings
    min_codes = 2

    def _check_params(self) -> None:
        self._check_learned_params()
        check_number("steps", self.steps, low=2, integer=True)
        check_number("hidden", self.hidden, low=1, integer=True)
        check_number("depth", self.depth, low=1, integer=True)
        check_choice("time_embedding", self.time_embedding, tuple(DENOISERS))
        check_choice("method", self.method, ("ddpm", "ddim"))
        check_number("sample_steps", self.sample_steps, low=1, integer=True, optional=True,
                     high=self.steps if self.method == "ddim" else None)   # DDIM runs on a subset of the steps
        check_number("eta", self.eta, low=0, high=1)

    def build_network(self, d: int) -> nn.Module:
        return DENOISERS[self.time_embedding](d, self.hidden, self.depth)

    def alpha_bar(self, device: torch.device | str) -> torch.Tensor:
        return alpha_bar_on(self.steps, torch.device(device))

    def training_loss(self, net: nn.Module, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        abar = self.alpha_bar(x.device)
        t = to_device(torch.randint(1, self.steps + 1, (x.shape[0],), generator=generator), x.device)
        eps = randn(tuple(x.shape), generator=generator, device=x.device)
        a = abar[t][:, None]
        x_t = a.sqrt() * x + (1 - a).sqrt() * eps
        return (net(x_t, t.float() / self.steps) - eps).pow(2).sum(1).mean()

    def prepare(self, z: torch.Tensor, **options: Any) -> tuple[torch.Tensor, ...]:
        """Standardised codes, and the box predicted x_0 is clipped to: their range widened by a tenth."""
        (x,) = super().prepare(z)
        low, high = x.min(0).values, x.max(0).values
        self.low_, self.high_ = low - 0.1 * (high - low), high + 0.1 * (high - low)
        return (x,)

    def draw(self, net: nn.Module, n: int, generator: torch.Generator | None, *, method: str | None = None,
             sample_steps: int | None = None, eta: float | None = None) -> torch.Tensor:
        """n standardised codes (n, d) by the DDIM update (module docstring): ``method=ddpm`` on all T steps
        at eta 1, ``ddim`` on ``sample_steps`` steps at ``eta``.  Each step clips the predicted x_0 to the
        codes' box (as image models clip to the pixel range): without it, the large last betas of the cosine
        schedule multiply the network's error at t = T many times over."""
        method = method or self.method
        if method == "ddpm":
            times, eta = list(range(self.steps, -1, -1)), 1.0
        else:
            k = self.ddim_steps(sample_steps)
            times, eta = torch.linspace(self.steps, 0, k + 1).round().long().tolist(), self.eta if eta is None else eta
        device = self.codes_device
        abar = self.alpha_bar(device)
        x = randn((n, self.n_features_in_), generator=generator, device=device)
        for t, s in zip(times[:-1], times[1:]):
            eps = net(x, torch.full((n,), t / self.steps, device=device))
            x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(self.low_, self.high_)
            eps = (x - abar[t].sqrt() * x0) / (1 - abar[t]).sqrt()
            var = eta ** 2 * (1 - abar[s]) / (1 - abar[t]) * (1 - abar[t] / abar[s])
            x = abar[s].sqrt() * x0 + (1 - abar[s] - var).clamp_min(0).sqrt() * eps
            if s > 0 and eta > 0:
                x = x + var.sqrt() * randn(tuple(x.shape), generator=generator, device=device)
        return x

    def ddim_steps(self, sample_steps: int | None = None) -> int:
        """The steps of a DDIM draw: ``sample_steps``, else the setting, else a quarter of the schedule's (at
        most the schedule's: a sampler saved with ``method=ddpm`` may hold a larger setting)."""
        return min(sample_steps or self.sample_steps or max(1, self.steps // 4), self.steps)

    def _sample(self, n: int, generator: torch.Generator | None, method: str | None = None,
                sample_steps: int | None = None, eta: float | None = None) -> torch.Tensor:
        if method is not None:
            check_choice("method", method, ("ddpm", "ddim"))
        if sample_steps is not None:
            check_number("sample_steps", sample_steps, low=1, high=self.steps, integer=True)
        if eta is not None:
            check_number("eta", eta, low=0, high=1)
        return super()._sample(n, generator, method=method, sample_steps=sample_steps, eta=eta)

    def _describe(self) -> dict[str, Any]:
        ddim = self.method == "ddim"
        return {**super()._describe(), "steps": self.steps, "method": self.method,
                "sample_steps": self.ddim_steps() if ddim else self.steps, "eta": self.eta if ddim else 1.0}
