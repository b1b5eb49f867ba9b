"""Gaussian KDE log densities: latentatlas (exact batched log-sum-exp) vs scikit-learn's KernelDensity.

Same codes (the synthetic mixture of bench_gmm.py), same queries (separate draws), same absolute
bandwidth (Scott's factor times the spread of the codes).  Both are checked against an exact float64
reference computed by direct differences on the first ``--check`` queries.

    python bench/bench_kde.py                               # 10,000 queries, 60,000 codes, d=64
    python bench/bench_kde.py --n 5000 --queries 1000 --d 8 # smoke run
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from scipy.special import logsumexp

from bench_gmm import make_codes
from latentatlas.latent.samplers import build_sampler


def reference(q: torch.Tensor, x: torch.Tensor, h: float) -> torch.Tensor:
    """log (1/n) sum_i N(q; x_i, h^2 I) from direct differences, float64: (m,)."""
    q, x = q.double(), x.double()
    out = []
    for row in q:
        sq = ((row - x) ** 2).sum(1)
        out.append(float(logsumexp(-0.5 * sq.numpy() / h**2)))
    d = x.shape[1]
    return torch.tensor(out, dtype=torch.float64) - math.log(len(x)) - d * math.log(h) - 0.5 * d * math.log(2 * math.pi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--queries", type=int, default=10000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--check", type=int, default=300, help="queries compared with the exact reference")
    p.add_argument("--libs", default="ours,sklearn")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    x, q = make_codes(a.n, a.d, 50, 0), make_codes(a.queries, a.d, 50, 1)
    h = float(build_sampler("kde").fit(x).bandwidth_[0])
    print(f"codes N={a.n}, queries={a.queries}, d={a.d}, bandwidth={h:.4f} (Scott x spread), threads={a.threads}")
    ref = reference(q[:a.check], x, h)
    rows = []
    for dtype in ("float64", "float32") if "ours" in a.libs else ():
        kde = build_sampler(f"kde:bandwidth={h!r},dtype={dtype}").fit(x)
        t = time.perf_counter()
        v = kde.score_samples(q).double()
        rows.append((f"latentatlas ({dtype})", time.perf_counter() - t, v))
    if "sklearn" in a.libs:
        from sklearn.neighbors import KernelDensity
        from threadpoolctl import threadpool_limits
        sk = KernelDensity(bandwidth=h).fit(x.double().numpy())
        with threadpool_limits(a.threads):
            t = time.perf_counter()
            v = torch.from_numpy(sk.score_samples(q.double().numpy()))
        rows.append(("scikit-learn KernelDensity (tree)", time.perf_counter() - t, v))
    sk_s = next((r[1] for r in rows if r[0].startswith("scikit")), None)
    print(f"{'implementation':36s} {'score s':>8s} {'vs sklearn':>10s} {'max |err| nats':>14s} "
          f"{'#err>1 nat':>10s}   (error vs exact reference on {a.check} queries)")
    for name, s, v in rows:
        err = (v[:a.check] - ref).abs()
        speed = f"{sk_s / s:9.1f}x" if sk_s else f"{'-':>10s}"
        print(f"{name:36s} {s:8.2f} {speed} {float(err.max()):14.3g} {int((err > 1).sum()):10d}")
    if len(rows) > 1:
        ours = rows[0][2]
        for name, _, v in rows[1:]:
            diff = v - ours
            print(f"{name} minus latentatlas (float64) on all {a.queries} queries: max {float(diff.max()):.3g}, "
                  f"min {float(diff.min()):.3g}, {int((diff.abs() > 1).sum())} queries off by > 1 nat")


if __name__ == "__main__":
    main()
