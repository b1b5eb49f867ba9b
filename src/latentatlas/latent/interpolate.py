"""Interpolation between latent codes.

Every interpolator is a pure function ``(z0 (B, d), z1 (B, d), t (T,)) -> (B, T, d)`` registered in
:data:`INTERPOLATORS` by name ('lerp', 'slerp', 'norm').  The helpers build on them: convex combinations
of n codes (random Dirichlet weights, or a triangle grid of the 2-simplex), iterated interpolation (a grid
made by interpolating between interpolations, and a path through such a grid) and one code against many.
"""

from __future__ import annotations

import logging

import torch

from latentatlas.registry import Registry
from latentatlas.rng import dirichlet

log = logging.getLogger(__name__)

INTERPOLATORS: Registry = Registry("interpolator")

#: below this angle (radians) slerp falls back to lerp: the two codes are nearly collinear.
SLERP_MIN_ANGLE = 1e-4


def _check(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    for name, z in (("z0", z0), ("z1", z1)):
        if not isinstance(z, torch.Tensor) or z.ndim != 2:
            raise ValueError(f"{name}: expected a (B, d) tensor, got {type(z).__name__} "
                             f"{tuple(getattr(z, 'shape', ()))}")
    if z0.shape != z1.shape:
        raise ValueError(f"z1: expected the shape of z0 {tuple(z0.shape)}, got {tuple(z1.shape)}")
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    if t.ndim != 1:
        raise ValueError(f"t: expected a 1-D tensor of positions, got shape {tuple(t.shape)}")
    return t


def _exact_ends(path: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``path`` (B, T, d) with its points at t = 0 and t = 1 set to z0 and z1 themselves (the sines and norms
    of the curved paths round them off by an ulp or two)."""
    path = torch.where((t == 0)[None, :, None], z0[:, None, :], path)
    return torch.where((t == 1)[None, :, None], z1[:, None, :], path)


@INTERPOLATORS.register("lerp")
def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line ``(1 - t) z0 + t z1``: (B, d), (B, d), (T,) -> (B, T, d)."""
    t = _check(z0, z1, t)[None, :, None]
    return (1 - t) * z0[:, None, :] + t * z1[:, None, :]


@INTERPOLATORS.register("slerp")
def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the great circle through z0 and z1 (norms interpolated linearly
    when they differ); pairs closer than :data:`SLERP_MIN_ANGLE` in angle use lerp. -> (B, T, d)."""
    t = _check(z0, z1, t)
    n0, n1 = z0.norm(dim=1, keepdim=True), z1.norm(dim=1, keepdim=True)
    u0 = z0 / n0.clamp_min(1e-12)
    u1 = z1 / n1.clamp_min(1e-12)
    cos = (u0 * u1).sum(dim=1).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)                                 # (B,)
    sin = torch.sin(omega)
    near = (omega < SLERP_MIN_ANGLE) | (sin.abs() < 1e-6) | (n0[:, 0] < 1e-12) | (n1[:, 0] < 1e-12)
    safe_sin = torch.where(near, torch.ones_like(sin), sin)
    tt = t[None, :]                                           # (1, T)
    w0 = torch.sin((1 - tt) * omega[:, None]) / safe_sin[:, None]
    w1 = torch.sin(tt * omega[:, None]) / safe_sin[:, None]
    # Interpolate on the unit sphere, then scale by the linearly interpolated norm.
    radius = (1 - tt) * n0 + tt * n1                          # (B, T)
    out = (w0[..., None] * u0[:, None, :] + w1[..., None] * u1[:, None, :]) * radius[..., None]
    out = torch.where(near[:, None, None], lerp(z0, z1, t), out)
    return _exact_ends(out, z0, z1, t)


@INTERPOLATORS.register("norm")
def normalised(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Normalised interpolation: the lerp direction rescaled to the linearly interpolated norm, so a
    path between two typical Gaussian codes does not pass through the low-norm 'hole'. -> (B, T, d)."""
    t = _check(z0, z1, t)
    path = lerp(z0, z1, t)
    radius = (1 - t[None, :]) * z0.norm(dim=1, keepdim=True) + t[None, :] * z1.norm(dim=1, keepdim=True)
    norm = path.norm(dim=2)
    scale = torch.where(norm > 1e-12, radius / norm.clamp_min(1e-12), torch.ones_like(norm))
    return _exact_ends(path * scale[..., None], z0, z1, t)


def interpolate(method: str, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Dispatch to a registered interpolator by name. -> (B, T, d)."""
    return INTERPOLATORS.get(method)(z0, z1, t)


def steps(n: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` evenly spaced positions from 0 to 1 inclusive, shape (n,)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"steps: expected an integer >= 2, got {n!r}")
    return torch.linspace(0.0, 1.0, n, device=device, dtype=dtype)


def random_convex_weights(m: int, k: int, *, generator: torch.Generator | None = None,
                          concentration: float = 1.0) -> torch.Tensor:
    """(m, k) barycentric weights drawn from a symmetric Dirichlet: non-negative, rows sum to 1."""
    if k < 1 or m < 1:
        raise ValueError(f"m, k: expected positive counts, got m={m!r}, k={k!r}")
    if concentration <= 0:
        raise ValueError(f"concentration: expected > 0, got {concentration!r}")
    return dirichlet(concentration, m, k, generator=generator).float()


def convex_combination(codes: torch.Tensor, weights: torch.Tensor, *, atol: float = 1e-4) -> torch.Tensor:
    """Points ``weights @ codes``: codes (k, d), weights (m, k) non-negative with rows summing to 1 -> (m, d)."""
    if codes.ndim != 2 or weights.ndim != 2 or weights.shape[1] != codes.shape[0]:
        raise ValueError(f"weights: expected (m, {codes.shape[0] if codes.ndim == 2 else 'k'}) for codes "
                         f"{tuple(codes.shape)}, got {tuple(weights.shape)}")
    if bool((weights < -atol).any()):
        raise ValueError("weights: expected non-negative barycentric weights, got a negative entry")
    sums = weights.sum(dim=1)
    if bool(((sums - 1).abs() > atol).any()):
        raise ValueError(f"weights: expected rows summing to 1, got sums in [{sums.min():.4g}, {sums.max():.4g}]")
    return weights.to(codes.dtype) @ codes


def triangle_weights(n: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Barycentric weights on the regular grid of the 2-simplex with n intervals per edge, row by row:
    row r = 0..n holds r + 1 points (r, c), c = 0..r, with weights ((n - r) / n, (r - c) / n, c / n).
    Row 0 is corner 0, row n runs from corner 1 to corner 2. -> ((n + 1)(n + 2) / 2, 3), rows sum to 1."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1 intervals per edge, got {n!r}")
    r, c = torch.tril_indices(n + 1, n + 1)                              # row-major: (0,0), (1,0), (1,1), ...
    counts = torch.stack([n - r, r - c, c], dim=1)
    return (counts.to(torch.float64) / n).to(dtype)


def interpolate_grid(corners: torch.Tensor, n: int, *, method: str = "slerp") -> torch.Tensor:
    """Iterated interpolation: corners (4, d) ordered top-left, top-right, bottom-left, bottom-right ->
    an (n, n, d) grid whose rows interpolate between the top and the bottom edge paths."""
    if corners.ndim != 2 or corners.shape[0] != 4:
        raise ValueError(f"corners: expected (4, d), got {tuple(corners.shape)}")
    t = steps(n, device=corners.device, dtype=corners.dtype)
    top = interpolate(method, corners[0:1], corners[1:2], t)            # (1, n, d) along the top edge
    bottom = interpolate(method, corners[2:3], corners[3:4], t)         # (1, n, d) along the bottom edge
    return interpolate_paths(top, bottom, t, method=method)[0]          # (n rows, n cols, d)


def interpolate_paths(path_a: torch.Tensor, path_b: torch.Tensor, s: torch.Tensor, *,
                      method: str = "slerp") -> torch.Tensor:
    """Iterated interpolation: interpolate between two paths point by point.
    path_a, path_b (B, T, d), s (S,) -> (B, S, T, d); s = 0 gives path_a, s = 1 gives path_b."""
    if path_a.ndim != 3 or path_a.shape != path_b.shape:
        raise ValueError(f"path_b: expected the (B, T, d) shape of path_a {tuple(path_a.shape)}, "
                         f"got {tuple(path_b.shape)}")
    b, n, d = path_a.shape
    mixed = interpolate(method, path_a.reshape(b * n, d), path_b.reshape(b * n, d), s)  # (B*T, S, d)
    return mixed.reshape(b, n, -1, d).transpose(1, 2)


def iterated_paths(z0: torch.Tensor, z1: torch.Tensor, via0: torch.Tensor, via1: torch.Tensor, t: torch.Tensor, *,
                   method: str = "slerp") -> torch.Tensor:
    """Paths from z0 to z1 (B, d) made by interpolating between interpolations: the diagonal of the grid with
    corners z0 (top-left), via0 (top-right), via1 (bottom-left), z1 (bottom-right), i.e. frame i is
    ``method(path z0 -> via0 at t_i, path via1 -> z1 at t_i, t_i)``; its midpoint is the midpoint between the
    midpoints of the two edge paths (for lerp: (z0 + via0 + via1 + z1) / 4). -> (B, T, d)."""
    t = _check(z0, z1, t)
    top, bottom = interpolate(method, z0, via0, t), interpolate(method, via1, z1, t)   # (B, T, d) each
    grid = interpolate_paths(top, bottom, t, method=method)                           # (B, S=T, T, d)
    i = torch.arange(t.shape[0], device=t.device)
    return grid[:, i, i]


def one_vs_many(z: torch.Tensor, others: torch.Tensor, t: torch.Tensor, *,
                method: str = "slerp") -> torch.Tensor:
    """Interpolate one code z (d,) or (1, d) towards each row of others (B, d). -> (B, T, d)."""
    z = z.reshape(1, -1)
    if others.ndim != 2 or others.shape[1] != z.shape[1]:
        raise ValueError(f"others: expected (B, {z.shape[1]}), got {tuple(others.shape)}")
    return interpolate(method, z.expand_as(others), others, t)


def random_pairs(n_codes: int, n_pairs: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n_pairs, 2) indices of distinct codes drawn uniformly."""
    if n_codes < 2:
        raise ValueError(f"n_codes: expected at least 2 codes to pair, got {n_codes}")
    i = torch.randint(0, n_codes, (n_pairs,), generator=generator)
    j = (i + torch.randint(1, n_codes, (n_pairs,), generator=generator)) % n_codes
    return torch.stack([i, j], dim=1)
