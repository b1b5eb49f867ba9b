"""Geodesics in latent space under the metric the decoder induces in output space.

A curve is discretised as T codes z_0 .. z_{T-1} with fixed endpoints.  Its decoded path has
length  L = sum_i ||f(z_{i+1}) - f(z_i)||  and energy  E = (T - 1) sum_i ||f(z_{i+1}) - f(z_i)||^2;
E >= L^2 with equality for constant speed, so minimising E gives short, evenly paced curves.

- :func:`optimise_geodesic` optimises the interior points of a curve with Adam, starting from lerp;
- :class:`InterpolationNet` maps (z0, z1, t) to a point of a curve with the endpoints built in, trained by
  :func:`train_interpolation_net` on many pairs with a shortest-path (length) loss and a constant-speed
  loss (after Geng et al. 2020, "Uniform interpolation constrained geodesic learning on data manifold");
- :func:`geodesic_paths` and :func:`learned_paths` give either kind of curve for many pairs at once (what the
  interpolate stage and the interpolation study use).
"""

from __future__ import annotations

import logging
from typing import Callable

import torch
from torch import nn

from latentatlas.latent.interpolate import lerp, steps
from latentatlas.rng import to_device, weights_from

log = logging.getLogger(__name__)

Decoder = Callable[[torch.Tensor], torch.Tensor]


def _decoded_steps(decode: Decoder, curve: torch.Tensor) -> torch.Tensor:
    """curve (B, T, d) -> output-space step lengths (B, T-1)."""
    b, t, d = curve.shape
    out = decode(curve.reshape(b * t, d)).reshape(b, t, -1)
    return (out[:, 1:] - out[:, :-1]).norm(dim=2)


def path_length(decode: Decoder, curve: torch.Tensor) -> torch.Tensor:
    """Length in output space of the decoded curve (B, T, d). -> (B,)."""
    return _decoded_steps(decode, curve).sum(dim=1)


def path_energy(decode: Decoder, curve: torch.Tensor) -> torch.Tensor:
    """Discrete energy (T - 1) * sum of squared decoded steps of curve (B, T, d). -> (B,)."""
    s = _decoded_steps(decode, curve)
    return s.shape[1] * s.pow(2).sum(dim=1)


def optimise_geodesic(decode: Decoder, z0: torch.Tensor, z1: torch.Tensor, *, n_points: int = 16,
                      iters: int = 300, lr: float = 1e-2, init: torch.Tensor | None = None) -> torch.Tensor:
    """Minimise the decoded energy of a curve from z0 (B, d) to z1 (B, d) with Adam over its interior
    points (the decoder's parameters are not updated; freeze them with ``requires_grad_(False)`` so no
    gradient accumulates on them). -> curve (B, n_points, d), detached."""
    if z0.shape != z1.shape or z0.ndim != 2:
        raise ValueError(f"z1: expected the (B, d) shape of z0 {tuple(z0.shape)}, got {tuple(z1.shape)}")
    if iters < 0 or lr <= 0:
        raise ValueError(f"iters, lr: expected iters >= 0 and lr > 0, got {iters!r}, {lr!r}")
    t = steps(n_points, device=z0.device, dtype=z0.dtype)
    start = lerp(z0, z1, t) if init is None else init
    inner = nn.Parameter(start[:, 1:-1].detach().clone())
    opt = torch.optim.Adam([inner], lr=lr)
    ends0, ends1 = z0.detach()[:, None], z1.detach()[:, None]
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        energy = path_energy(decode, torch.cat([ends0, inner, ends1], dim=1)).sum()
        energy.backward()
        opt.step()
    return torch.cat([ends0, inner.detach(), ends1], dim=1)


class InterpolationNet(nn.Module):
    """z(z0, z1, t) = (1 - t) z0 + t z1 + t (1 - t) scale * h(z0, z1, t): a residual off the straight line,
    zero at initialisation (the last layer starts at 0), with z(0) = z0 and z(1) = z1 for every pair.
    h(z0, z1, t) = (g(u0, u1, t) + g(u1, u0, 1 - t)) / 2 with u = (z - loc) / scale and g an MLP, so the
    curve from z1 to z0 is the same curve run backwards.  forward: z0 (B, d), z1 (B, d), t (T,) -> (B, T, d)."""

    def __init__(self, latent_dim: int, hidden: int = 128, depth: int = 3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if latent_dim < 1 or hidden < 1 or depth < 1:
            raise ValueError(f"latent_dim, hidden, depth: expected positive ints, got {latent_dim}, {hidden}, {depth}")
        layers: list[nn.Module] = []
        width = 2 * latent_dim + 1
        with weights_from(generator):   # torch's default initialisation, drawn from generator
            for _ in range(depth):
                layers += [nn.Linear(width, hidden), nn.SiLU()]
                width = hidden
            layers.append(nn.Linear(width, latent_dim))
        nn.init.zeros_(layers[-1].weight)  # start as lerp
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim))      # codes are standardised on the way in
        self.register_buffer("scale", torch.ones(latent_dim))     # and the bend is in units of their spread

    def standardise_on(self, codes: torch.Tensor) -> "InterpolationNet":
        """Set loc and scale from the per-dimension mean and std of codes (N, d)."""
        self.loc.copy_(codes.mean(dim=0))
        self.scale.copy_(codes.std(dim=0).clamp_min(1e-6))
        return self

    def forward(self, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, n = z0.shape[0], t.shape[0]
        tt = t.to(z0.dtype)[None, :, None].expand(b, n, 1)
        a, c = z0[:, None].expand(b, n, -1), z1[:, None].expand(b, n, -1)
        ua, uc = (a - self.loc) / self.scale, (c - self.loc) / self.scale
        bend = 0.5 * (self.net(torch.cat([ua, uc, tt], dim=2)) + self.net(torch.cat([uc, ua, 1 - tt], dim=2)))
        return (1 - tt) * a + tt * c + tt * (1 - tt) * self.scale * bend


def interpolation_losses(decode: Decoder, curve: torch.Tensor) -> dict[str, torch.Tensor]:
    """Losses of a batch of curves (B, T, d), both in output-space length units: 'length' (mean decoded
    length L, the shortest-path term) and 'speed' (mean of L * cv^2 = sum_i (s_i - s)^2 / s with s the mean
    step, the constant-speed term; 0 at constant speed, and length + speed ~ sqrt(energy) for small cv)."""
    s = _decoded_steps(decode, curve)                         # (B, T-1)
    mean = s.mean(dim=1, keepdim=True)
    speed = (s - mean).pow(2).sum(dim=1) / mean[:, 0].detach().clamp_min(1e-12)
    return {"length": s.sum(dim=1).mean(), "speed": speed.mean()}


def train_interpolation_net(decode: Decoder, codes: torch.Tensor, *, n_points: int = 9, iters: int = 200,
                            batch_size: int = 8, lr: float = 1e-2, speed_weight: float = 0.1,
                            hidden: int = 128, generator: torch.Generator | None = None,
                            pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> InterpolationNet:
    """Train an :class:`InterpolationNet` on random pairs of ``codes`` (N, d) (or on fixed ``pairs``
    (z0 (P, d), z1 (P, d))) to minimise length + speed_weight * speed of the decoded curves.

    Cost: iters * batch_size * n_points decodes with gradients (the defaults: 14,400, ~5-10 s on a CPU
    for a small conv decoder).  Train with the n_points the curves are used at: fewer points let the
    curve cut corners between them."""
    if codes.ndim != 2 or codes.shape[0] < 2:
        raise ValueError(f"codes: expected (N >= 2, d), got {tuple(codes.shape)}")
    if iters < 0 or batch_size < 1 or lr <= 0 or speed_weight < 0:
        raise ValueError(f"iters, batch_size, lr, speed_weight: expected >= 0, >= 1, > 0, >= 0, got {iters}, "
                         f"{batch_size}, {lr}, {speed_weight}")
    net = InterpolationNet(codes.shape[1], hidden=hidden, generator=generator).to(codes.device, codes.dtype)
    net.standardise_on(codes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    t = steps(n_points, device=codes.device, dtype=codes.dtype)
    for it in range(iters):
        if pairs is None:
            idx = to_device(torch.randint(0, codes.shape[0], (2, batch_size), generator=generator), codes.device)
            z0, z1 = codes[idx[0]], codes[idx[1]]
        else:
            z0, z1 = pairs
        losses = interpolation_losses(decode, net(z0, z1, t))
        loss = losses["length"] + speed_weight * losses["speed"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % 50 == 0:
            log.debug("interpolation net %d: length %.4f speed %.4g", it, losses["length"], losses["speed"])
    return net.eval()


def geodesic_paths(decode: Decoder, z0: torch.Tensor, z1: torch.Tensor, *, n_points: int = 9, iters: int = 200,
                   lr: float = 5e-2, batch_pairs: int = 64) -> torch.Tensor:
    """:func:`optimise_geodesic` for many pairs z0, z1 (B, d), ``batch_pairs`` pairs at a time (the pairs are
    independent, so batching only bounds memory). -> curves (B, n_points, d), detached, on z0's device."""
    if batch_pairs < 1:
        raise ValueError(f"batch_pairs: expected >= 1, got {batch_pairs!r}")
    if z0.shape != z1.shape or z0.ndim != 2:
        raise ValueError(f"z1: expected the (B, d) shape of z0 {tuple(z0.shape)}, got {tuple(z1.shape)}")
    return torch.cat([optimise_geodesic(decode, z0[s:s + batch_pairs], z1[s:s + batch_pairs], n_points=n_points,
                                        iters=iters, lr=lr) for s in range(0, z0.shape[0], batch_pairs)])


def learned_paths(decode: Decoder, train_codes: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, *,
                  iters: int = 200, generator: torch.Generator | None = None, **train) -> torch.Tensor:
    """Train an :class:`InterpolationNet` on pairs of ``train_codes`` (N, d) with ``len(t)`` points per curve
    (:func:`train_interpolation_net`, keyword ``train`` passed on) and run it on the pairs z0, z1 (B, d) at
    positions t (T,). -> curves (B, T, d), detached."""
    net = train_interpolation_net(decode, train_codes, n_points=t.shape[0], iters=iters, generator=generator, **train)
    with torch.no_grad():
        return net(z0, z1, t.to(z0.device, z0.dtype))
