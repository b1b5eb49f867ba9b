"""Convex-hull membership of query points in the hull of a set of codes.

``in_hull(queries, points)`` answers exactly (an LP with scipy's HiGHS decides each point that the
screens leave open) but solves few and small LPs:

1. screening, batched on all queries at once: a query outside the bounding box of the points, or one
   beyond every point along the direction from the points' mean to the query (plain or whitened), is
   outside;
2. the rest go through a cutting-plane loop.  A small LP over a working subset S of the points (the
   query's nearest neighbours and the points furthest along the whitened direction to start with)
   gives the query's L-infinity distance to conv(S), and with it either certifies the query inside conv(S),
   hence inside conv(points), or a hyperplane separating it from conv(S).  If no point lies beyond that
   hyperplane the query is outside; otherwise the points furthest beyond it join S and the loop goes on.

A query within its own dtype's rounding of the hull counts as inside (its L-infinity distance at most 4 ulps of
its largest coordinate or the points'): a midpoint of two float32 codes on the hull's boundary (in 16 or more
dimensions nearly every code is a vertex) is rounded to a float32 that may lie 1e-8 outside, which is no
finding about the codes.

:func:`in_hull_linprog` is the textbook reference: one feasibility LP over all points per query.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.optimize import linprog

log = logging.getLogger(__name__)


def _as_array(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """``x`` as a float64 (n, d) array (bfloat16 and integer tensors too), checked 2-D and finite."""
    arr = x.detach().cpu().to(torch.float64).numpy() if isinstance(x, torch.Tensor) else \
        np.asarray(x).astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, d), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return arr


def _unit_roundoff(*arrays: torch.Tensor | np.ndarray) -> float:
    """The coarsest float precision among the inputs (float64's for integers): float32 codes -> 1.2e-7."""
    def eps(a: torch.Tensor | np.ndarray) -> float:
        if isinstance(a, torch.Tensor):
            return torch.finfo(a.dtype).eps if a.is_floating_point() else torch.finfo(torch.float64).eps
        kind = np.asarray(a).dtype
        return float(np.finfo(kind if np.issubdtype(kind, np.floating) else np.float64).eps)
    return max(eps(a) for a in arrays)


def in_hull_linprog(queries: torch.Tensor | np.ndarray, points: torch.Tensor | np.ndarray) -> np.ndarray:
    """Reference: for each query q (d,), is there lambda >= 0, sum 1, with points^T lambda = q?
    One HiGHS LP over all n points per query. -> bool (m,)."""
    q, x = _as_array(queries, "queries"), _as_array(points, "points")
    a_eq = np.vstack([x.T, np.ones((1, x.shape[0]))])
    out = np.zeros(q.shape[0], dtype=bool)
    for i, qi in enumerate(q):
        res = linprog(np.zeros(x.shape[0]), A_eq=a_eq, b_eq=np.append(qi, 1.0), bounds=(0, None),
                      method="highs")
        out[i] = res.status == 0
    return out


def _normalise(q: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre and scale both by the points' mean and overall spread (membership is affine-invariant).
    -> (q, x, the spread divided by)."""
    mean = x.mean(axis=0)
    scale = float(np.abs(x - mean).max()) or 1.0
    return (q - mean) / scale, (x - mean) / scale, scale


def screen_outside(q: np.ndarray, x: np.ndarray, *, margin: float | np.ndarray = 0.0,
                   chunk: int = 1024) -> np.ndarray:
    """Cheap sufficient test, batched: True where a query (m, d) is certainly further than its ``margin``
    (a number, or one per query) from conv(x) in L-infinity distance: outside the bounding box by more, or
    beyond every point along the direction from the mean of x to the query, plain or whitened by the
    covariance of x (better for anisotropic codes). -> bool (m,)."""
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), (q.shape[0],))
    lo, hi = x.min(axis=0), x.max(axis=0)
    out = ((q < lo - margin[:, None]) | (q > hi + margin[:, None])).any(axis=1)
    mean = x.mean(axis=0)
    prec = np.linalg.pinv(np.atleast_2d(np.cov(x, rowvar=False)))
    xt = torch.from_numpy(x)
    for s in range(0, q.shape[0], chunk):
        qs = q[s:s + chunk]
        for u in (qs - mean, (qs - mean) @ prec):                  # (c, d) candidate normals
            proj_q = (u * qs).sum(axis=1)                           # (c,)
            proj_x = (xt @ torch.from_numpy(np.ascontiguousarray(u)).T).amax(dim=0).numpy()
            slack = margin[s:s + chunk] * np.abs(u).sum(axis=1) + 1e-12 * (1 + np.abs(proj_x))
            out[s:s + chunk] |= proj_q > proj_x + slack
    return out


def _separate(qi: np.ndarray, xs: np.ndarray) -> tuple[float, np.ndarray, float]:
    """max a.q - b  s.t.  a.x_j <= b for x_j in xs, |a|_1 <= 1 (a = a+ - a-, both >= 0).  Returns (value, a, b):
    value is the L-infinity distance of q to conv(xs) (the L1 ball is the dual of L-infinity's), and when it
    is positive a.x = b separates q from conv(xs)."""
    k, d = xs.shape
    c = np.concatenate([-qi, qi, [1.0]])                    # minimise -(a.q - b)
    a_ub = np.vstack([np.hstack([xs, -xs, -np.ones((k, 1))]), np.append(np.ones(2 * d), 0.0)])
    bounds = [(0.0, None)] * (2 * d) + [(None, None)]
    res = linprog(c, A_ub=a_ub, b_ub=np.append(np.zeros(k), 1.0), bounds=bounds, method="highs")
    if res.status != 0:  # pragma: no cover - the LP is always feasible (a = 0) and bounded
        raise RuntimeError(f"hull separation LP failed: {res.message}")
    return -float(res.fun), res.x[:d] - res.x[d:2 * d], float(res.x[2 * d])


def _cutting_plane(qi: np.ndarray, x: np.ndarray, xt: torch.Tensor, start: np.ndarray, *, add: int,
                   tol: float, slack: float, max_rounds: int) -> tuple[bool, int]:
    """Decide one query with a growing working set: inside when its L-infinity distance to the hull is at
    most ``tol + slack``. -> (inside, number of LPs)."""
    active = np.zeros(x.shape[0], dtype=bool)
    active[start] = True
    for rounds in range(1, max_rounds + 1):
        value, a, b = _separate(qi, x[active])
        if value <= tol + slack:
            return True, rounds
        beyond = (xt @ torch.from_numpy(a)).numpy() - b     # (n,) > 0: point on the query's side
        beyond[active] = -np.inf
        n_new = int((beyond > tol).sum())
        if n_new == 0:
            return False, rounds
        pick = np.argpartition(-beyond, min(add, n_new) - 1)[:min(add, n_new)]
        active[pick] = True
    # Fall back to the full LP over every point (never reached in practice).
    return bool(in_hull_linprog(qi[None], x)[0]), max_rounds + 1


def in_hull(queries: torch.Tensor | np.ndarray, points: torch.Tensor | np.ndarray, *, n_start: int | None = None,
            add: int | None = None, tol: float = 1e-9, max_rounds: int = 200,
            return_stats: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Exact convex-hull membership of queries (m, d) in conv(points (n, d)), up to the inputs' rounding: a
    query whose L-infinity distance to the hull is at most 4 ulps of its dtype at its own largest coordinate
    (or the points') is inside; ``tol`` (in units of the points' spread) is added to that. -> bool (m,) (and a
    stats dict: how many queries each screen settled, how many LPs)."""
    q, x = _as_array(queries, "queries"), _as_array(points, "points")
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"queries: expected {x.shape[1]} columns like points, got {q.shape[1]}")
    if x.shape[0] == 0:
        raise ValueError("points: expected at least one point, got an empty array")
    magnitude = np.maximum(np.abs(q).max(axis=1, initial=0.0), np.abs(x).max())           # (m,)
    q, x, scale = _normalise(q, x)
    rounding = 4 * _unit_roundoff(queries, points) * magnitude / scale   # (m,): each query's 4 ulps, normalised
    d = x.shape[1]
    n_start = min(x.shape[0], n_start or 2 * (d + 1))
    add = add or 2 * (d + 1)
    outside = screen_outside(q, x, margin=rounding + tol)
    inside = np.zeros(q.shape[0], dtype=bool)
    open_idx = np.flatnonzero(~outside)
    xt = torch.from_numpy(x)
    prec = torch.from_numpy(np.linalg.pinv(np.atleast_2d(np.cov(x, rowvar=False))))
    n_lps = 0
    for s in range(0, open_idx.size, 256):
        idx = open_idx[s:s + 256]
        qt = torch.from_numpy(q[idx])
        # working sets to start from: the query's nearest points and the points furthest along the
        # whitened direction from the mean to the query (the likely supporting points of a separation)
        near = torch.cdist(qt, xt).topk(n_start, dim=1, largest=False).indices
        far = (xt @ (qt @ prec).T).topk(n_start, dim=0).indices.T
        start = torch.cat([near, far], dim=1).numpy()
        for row, i in enumerate(idx):
            inside[i], used = _cutting_plane(q[i], x, xt, start[row], add=add, tol=tol, slack=rounding[i],
                                             max_rounds=max_rounds)
            n_lps += used
    stats = {"queries": int(q.shape[0]), "screened_outside": int(outside.sum()),
             "decided_by_lp": int(open_idx.size), "lps_solved": n_lps, "inside": int(inside.sum())}
    log.debug("in_hull: %s", stats)
    return (inside, stats) if return_stats else inside


def hull_fraction(queries: torch.Tensor | np.ndarray, points: torch.Tensor | np.ndarray) -> float:
    """Fraction of queries inside conv(points)."""
    return float(in_hull(queries, points).mean())


def hull_fraction_vs_dim(train: np.ndarray, test: np.ndarray, dims: list[int], *, n_hull: int | None = None,
                         n_query: int = 200, generator: torch.Generator | None = None) -> dict[str, list]:
    """Fraction of codes inside the hull of the training codes after projecting both on the first k
    principal directions of train, for k in dims.  'test': test codes against the training hull;
    'train': held-out training codes against the hull of the other training codes.
    -> {'dim': [...], 'test': [...], 'train': [...]}."""
    train, test = _as_array(train, "train"), _as_array(test, "test")
    perm = torch.randperm(train.shape[0], generator=generator).numpy()
    held, rest = perm[:n_query], perm[n_query:]
    if n_hull is not None:
        rest = rest[:n_hull]
    mean = train[rest].mean(axis=0)
    _, _, vt = np.linalg.svd(train[rest] - mean, full_matrices=False)
    tq = torch.randperm(test.shape[0], generator=generator).numpy()[:n_query]
    out: dict[str, list] = {"dim": [], "test": [], "train": []}
    for k in dims:
        if not 1 <= k <= vt.shape[0]:
            raise ValueError(f"dims: expected values in [1, {vt.shape[0]}], got {k}")
        basis = vt[:k].T
        hull_pts = (train[rest] - mean) @ basis
        out["dim"].append(int(k))
        out["test"].append(hull_fraction((test[tq] - mean) @ basis, hull_pts))
        out["train"].append(hull_fraction((train[held] - mean) @ basis, hull_pts))
    return out
