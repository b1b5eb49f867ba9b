"""Memorisation: distances to the nearest training image and the data-copying test of Meehan et al. (2020).

The data-copying statistic C_T partitions feature space into cells by k-means on the training
features.  In each cell pi, L(x) is the distance of x to its nearest training point of the same
cell; a Mann-Whitney U test compares L over generated samples Q_m(pi) with L over held-out real
samples P_n(pi), z-scored under the null: Z_U = (U - (m n / 2 - 1/2)) / sqrt(m n (m + n + 1) / 12).
C_T is the average of Z_U over cells holding more than a fraction ``tau`` of the generated samples,
weighted by P_n(pi).  C_T << 0 means the samples sit closer to the training set than fresh data
does (data copying); C_T >> 0 means under-fitting.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from latentatlas.tensors import DEFAULT_CHUNK_BYTES, as_features, chunk_rows, sq_dists

log = logging.getLogger(__name__)


def nearest_neighbours(ref: Any, query: Any, *, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                       dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of query (M, D): Euclidean distance to, and index of, its nearest row of ref (N, D)."""
    ref = as_features(ref, "ref", dtype, "cpu")
    query = as_features(query, "query", dtype, "cpu")
    if ref.shape[1] != query.shape[1]:
        raise ValueError(f"query: expected {ref.shape[1]} feature columns like ref, got {query.shape[1]}")
    ref_sq, q_sq = (ref * ref).sum(1), (query * query).sum(1)
    dist = torch.empty(query.shape[0], dtype=torch.float64)
    idx = torch.empty(query.shape[0], dtype=torch.int64)
    step = chunk_rows(ref.shape[0], max_chunk_bytes, ref.element_size())
    for s in range(0, query.shape[0], step):
        d, i = sq_dists(query[s:s + step], q_sq[s:s + step], ref, ref_sq).min(1)
        dist[s:s + step], idx[s:s + step] = d.double().sqrt(), i
    return dist, idx


def nearest_train_distances(train: Any, fake: Any, real: Any | None = None) -> dict[str, float]:
    """Summary of fake-to-nearest-training distances; with held-out ``real`` also the ratio of medians
    median L(fake) / median L(real) (well below 1: samples closer to the training set than new data)."""
    d_fake, _ = nearest_neighbours(train, fake)
    out = {"nn_train_mean": float(d_fake.mean()), "nn_train_median": float(d_fake.median()),
           "nn_train_min": float(d_fake.min())}
    if real is not None:
        d_real, _ = nearest_neighbours(train, real)
        out["nn_train_ratio"] = float(d_fake.median() / d_real.median().clamp_min(1e-12))
    return out


def _zu(l_fake: np.ndarray, l_real: np.ndarray) -> float:
    """Z-scored Mann-Whitney U of L(Q_m) against L(P_n) (negative: generated closer to training)."""
    m, n = len(l_fake), len(l_real)
    u = mannwhitneyu(l_fake, l_real, alternative="less").statistic
    return float((u - (m * n / 2.0 - 0.5)) / math.sqrt(m * n * (m + n + 1) / 12.0))


def data_copying_test(train: Any, real: Any, fake: Any, *, n_cells: int = 20, tau: float | None = None,
                      generator: torch.Generator | None = None) -> dict[str, Any]:
    """Meehan et al.'s C_T for generated features ``fake`` (M, D), held-out real ``real`` (N, D) and
    training features ``train`` (L, D).  ``tau`` defaults to 20 / M (cells need > 20 generated samples)."""
    from sklearn.cluster import KMeans

    train_t = as_features(train, "train", torch.float64, "cpu")
    real_t = as_features(real, "real", torch.float64, "cpu")
    fake_t = as_features(fake, "fake", torch.float64, "cpu")
    if not 1 <= n_cells <= train_t.shape[0]:
        raise ValueError(f"n_cells: expected 1 <= n_cells <= {train_t.shape[0]} (training rows), got {n_cells}")
    tau = 20.0 / fake_t.shape[0] if tau is None else float(tau)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    km = KMeans(n_clusters=n_cells, n_init=3, random_state=seed).fit(train_t.numpy())
    centres = torch.from_numpy(km.cluster_centers_)
    cell_of = {name: nearest_neighbours(centres, t)[1].numpy()
               for name, t in (("train", train_t), ("real", real_t), ("fake", fake_t))}
    z_cells, weights, skipped = [], [], 0
    for c in range(n_cells):
        tr, re, fk = (cell_of[k] == c for k in ("train", "real", "fake"))
        if not re.any() or not tr.any():
            skipped += 1
            continue
        if fk.mean() <= tau:
            continue
        l_real = nearest_neighbours(train_t[tr], real_t[re])[0].numpy()
        l_fake = nearest_neighbours(train_t[tr], fake_t[fk])[0].numpy()
        z_cells.append(_zu(l_fake, l_real))
        weights.append(re.mean())
    if skipped:
        log.info("data-copying test: %d of %d cells hold no held-out real samples and are left out", skipped, n_cells)
    if not z_cells:
        return {"data_copying_z": float("nan"), "data_copying_cells": 0, "data_copying_n_cells": n_cells}
    w = np.asarray(weights)
    c_t = float(np.dot(w, z_cells) / w.sum())
    return {"data_copying_z": c_t, "data_copying_cells": len(z_cells), "data_copying_n_cells": n_cells}
