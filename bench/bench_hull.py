"""Convex-hull membership: latentatlas.latent.hull.in_hull (screening + cutting-plane LPs) against the
textbook method, one scipy ``linprog`` (HiGHS) feasibility LP over all points per query.

Default: 10,000 queries against 60,000 codes at d = 16, for two code sets:
- mnist-pca16: the 60,000 MNIST training images projected on their top 16 principal directions
  (the codes of a linear autoencoder), queries = the 10,000 test images (needs ../shared/data/mnist);
- gaussian16: 60,000 standard normal codes, queries = 10,000 more scaled by 0.6 (mostly inside).
The baseline is timed on a random subset of the queries (``--baseline-queries``) and extrapolated;
answers are compared on that subset.

    python bench/bench_hull.py [--points 60000] [--queries 10000] [--dim 16] [--baseline-queries 40]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch

from latentatlas.latent.hull import in_hull, in_hull_linprog

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def read_idx_images(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    n, h, w = (int.from_bytes(data[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, h * w).astype(np.float64) / 255.0


def mnist_pca(dim: int, n_points: int, n_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    train_file, test_file = MNIST / "train-images-idx3-ubyte.gz", MNIST / "t10k-images-idx3-ubyte.gz"
    if not train_file.is_file():
        return None
    train, test = read_idx_images(train_file)[:n_points], read_idx_images(test_file)[:n_queries]
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train[:20000] - mean, full_matrices=False)
    basis = vt[:dim].T
    return (train - mean) @ basis, (test - mean) @ basis


def gaussian(dim: int, n_points: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_points, dim, generator=g, dtype=torch.float64).numpy(),
            0.6 * torch.randn(n_queries, dim, generator=g, dtype=torch.float64).numpy())


def bench(name: str, points: np.ndarray, queries: np.ndarray, n_base: int, seed: int = 0) -> None:
    t0 = time.perf_counter()
    ours, stats = in_hull(queries, points, return_stats=True)
    t_ours = time.perf_counter() - t0
    pick = torch.randperm(len(queries), generator=torch.Generator().manual_seed(seed))[:n_base].numpy()
    t0 = time.perf_counter()
    ref = in_hull_linprog(queries[pick], points)
    t_base = (time.perf_counter() - t0) / len(pick)
    agree = int((ref == ours[pick]).sum())
    est = t_base * len(queries)
    print(f"\n{name}: {len(queries)} queries vs {len(points)} points, d = {points.shape[1]}")
    print(f"  {'method':<38}{'seconds':>10}{'per query (ms)':>16}{'inside':>9}")
    print(f"  {'latentatlas in_hull (all queries)':<38}{t_ours:>10.1f}{1e3 * t_ours / len(queries):>16.2f}"
          f"{ours.mean():>9.3f}")
    print(f"  {'linprog per query (extrapolated)':<38}{est:>10.0f}{1e3 * t_base:>16.1f}{ref.mean():>9.3f}"
          f"   (timed on {len(pick)} queries)")
    print(f"  speed-up {est / t_ours:.1f}x; identical answers on the {len(pick)} checked: {agree}/{len(pick)}")
    print(f"  screening settled {stats['screened_outside']} outside without an LP; "
          f"{stats['decided_by_lp']} by {stats['lps_solved']} small LPs "
          f"({stats['lps_solved'] / max(1, stats['decided_by_lp']):.1f} per query)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--baseline-queries", type=int, default=40)
    ap.add_argument("--only", choices=["mnist", "gaussian"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.only in (None, "mnist"):
        data = mnist_pca(args.dim, args.points, args.queries)
        if data is None:
            print(f"mnist-pca: skipped, no MNIST IDX files in {MNIST}")
        else:
            bench(f"mnist-pca{args.dim}", *data, args.baseline_queries)
    if args.only in (None, "gaussian"):
        bench(f"gaussian{args.dim}", *gaussian(args.dim, args.points, args.queries), args.baseline_queries)


if __name__ == "__main__":
    main()
