"""Convex-hull membership: latentatlas.latent.hull.in_hull (screening + cutting-plane LPs) against the
textbook method, one scipy ``linprog`` (HiGHS) feasibility LP over all points per query.

Default: 10,000 queries against 60,000 codes at d = 16, for two code sets:
- mnist-pca16: the 60,000 MNIST training images projected on their top 16 principal directions
  (the codes of a linear autoencoder), queries = the 10,000 test images (needs ../shared/data/mnist);
- gaussian16: 60,000 standard normal codes, queries = 10,000 more scaled by 0.6 (mostly inside).
Ours is timed on all the queries.  The baseline is timed on ``--baseline-queries`` random queries, a fresh
subset in each run (seed = run index, so the spread of its runs includes the sampling of the subset), and
extrapolated to all the queries; its answers are compared with ours on each subset.  The two alternate
``--repeats`` times (timing.alternate: every run, median, min and max, ratio of medians).

    python bench/bench_hull.py [--points 60000] [--queries 10000] [--dim 16] [--baseline-queries 40] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch
from timing import Timed, add_repeats, alternate, protocol

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


def bench(name: str, points: np.ndarray, queries: np.ndarray, n_base: int, repeats: int) -> None:
    m = len(queries)
    print(f"\n{name}: {m} queries vs {len(points)} points, d = {points.shape[1]}", flush=True)
    ours = Timed(lambda: in_hull(queries, points, return_stats=True))
    checked = {"runs": 0, "same": 0, "all": 0, "inside": 0}   # baseline runs so far (the subset's seed), answers

    def baseline() -> tuple[float, str]:
        seed = checked["runs"]
        pick = torch.randperm(m, generator=torch.Generator().manual_seed(seed))[:n_base].numpy()
        start = time.perf_counter()
        ref = in_hull_linprog(queries[pick], points)
        per_query = (time.perf_counter() - start) / len(pick)
        same = int((ref == ours.last[0][pick]).sum())
        for key, add in (("runs", 1), ("same", same), ("all", len(pick)), ("inside", int(ref.sum()))):
            checked[key] += add
        return per_query * m, (f"= {1e3 * per_query:.1f} ms/query x {m}, timed on {len(pick)} queries (seed {seed}), "
                               f"same answers as ours {same}/{len(pick)}")

    base_name = f"linprog per query, extrapolated to {m}"
    alternate({f"latentatlas in_hull, all {m} queries": ours, base_name: baseline}, repeats, baseline=base_name,
              digits=1)
    inside, stats = ours.last
    print(f"inside: ours {inside.mean():.4f} of all {m}; linprog {checked['inside'] / checked['all']:.4f} of the "
          f"{checked['all']} checked; identical answers on {checked['same']}/{checked['all']} checked")
    print(f"screening settled {stats['screened_outside']} outside without an LP; {stats['decided_by_lp']} by "
          f"{stats['lps_solved']} small LPs ({stats['lps_solved'] / max(1, stats['decided_by_lp']):.1f} per query)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=60000)
    ap.add_argument("--queries", type=int, default=10000)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--baseline-queries", type=int, default=40)
    ap.add_argument("--only", choices=["mnist", "gaussian"], default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (screening, working sets)")
    add_repeats(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    protocol("Convex-hull membership: latentatlas in_hull vs one scipy linprog (HiGHS) per query",
             {"sizes": f"{args.queries} queries vs {args.points} points, d = {args.dim}",
              "dtype": "float64",
              "timed": f"ours on all queries; linprog on {args.baseline_queries} random queries per run, "
                       "extrapolated (a fresh subset each run)"},
             ("torch", "numpy", "scipy"))
    if args.only in (None, "mnist"):
        data = mnist_pca(args.dim, args.points, args.queries)
        if data is None:
            print(f"mnist-pca: skipped, no MNIST IDX files in {MNIST}")
        else:
            bench(f"mnist-pca{args.dim}", *data, args.baseline_queries, args.repeats)
    if args.only in (None, "gaussian"):
        bench(f"gaussian{args.dim}", *gaussian(args.dim, args.points, args.queries), args.baseline_queries,
              args.repeats)


if __name__ == "__main__":
    main()
