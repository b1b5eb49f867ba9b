"""Gaussian KDE log densities: latentatlas (exact batched log-sum-exp) vs scikit-learn's KernelDensity.

Same codes (the synthetic mixture of bench_gmm.py), same queries (separate draws), same absolute
bandwidth (Scott's factor times the spread of the codes).  Both are checked against an exact float64
reference computed by direct differences on the first ``--check`` queries.  Only ``score_samples`` is timed
(the fits, ours storing the codes and scikit-learn building its tree, are timed once and printed), alternating
``--repeats`` times (timing.alternate: every run, median, min and max, ratio of medians).  scikit-learn's
``score_samples`` has no n_jobs: it runs on one core whatever ``--threads`` says; ours uses ``--threads``,
or a GPU with ``--device cuda`` (codes and queries there; scikit-learn stays on the CPU).

    python bench/bench_kde.py                               # 10,000 queries, 60,000 codes, d=64
    python bench/bench_kde.py --n 5000 --queries 1000 --d 8 # smoke run
"""

from __future__ import annotations

import argparse
import math

import torch
from scipy.special import logsumexp

from bench_gmm import make_codes
from timing import Timed, add_device, add_repeats, alternate, protocol
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
    add_repeats(p)
    add_device(p)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    x, q = make_codes(a.n, a.d, 50, 0), make_codes(a.queries, a.d, 50, 1)
    h = float(build_sampler("kde").fit(x).bandwidth_[0])
    xd, qd = x.to(a.device), q.to(a.device)
    runs, fits = {}, {}
    for dtype in ("float64", "float32") if "ours" in a.libs else ():
        fit = Timed(lambda dtype=dtype: build_sampler(f"kde:bandwidth={h!r},dtype={dtype}").fit(xd))
        fits[f"latentatlas ({dtype})"] = fit()
        runs[f"latentatlas ({dtype})"] = Timed(lambda kde=fit.last: kde.score_samples(qd).double().cpu())
    if "sklearn" in a.libs:
        from sklearn.neighbors import KernelDensity
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
        fit = Timed(lambda: KernelDensity(bandwidth=h).fit(x.double().numpy()))
        fits["scikit-learn KernelDensity (tree)"] = fit()
        runs["scikit-learn KernelDensity (tree)"] = Timed(
            lambda sk=fit.last: torch.from_numpy(sk.score_samples(q.double().numpy())))
    protocol("Gaussian KDE log densities (score_samples): latentatlas exact vs scikit-learn KernelDensity",
             {"sizes": f"codes {a.n} x {a.d}, queries {a.queries} x {a.d} (bench_gmm.make_codes, seeds 0 and 1)",
              "dtypes": "ours float64 and float32 as named; scikit-learn float64 (rtol=0, atol=0)",
              "device": f"ours on {a.device}; scikit-learn on the CPU",
              "bandwidth": f"{h:.4f} (Scott x spread), the same absolute value for all",
              "untimed fits": ", ".join(f"{name} {s:.2f} s" for name, s in fits.items()),
              "thread settings": f"{a.threads} for torch and the BLAS pools; "
                                 "scikit-learn's tree query is single-threaded"},
             ("torch", "numpy", "scipy", "scikit-learn"))
    sk_name = "scikit-learn KernelDensity (tree)"
    alternate(runs, a.repeats, baseline=sk_name if sk_name in runs else None)
    ref = reference(q[:a.check], x, h)
    print(f"{'implementation':36s} {'max |err| nats':>14s} {'#err>1 nat':>10s}   (vs the exact float64 reference "
          f"on the first {a.check} queries)")
    for name, fn in runs.items():
        err = (fn.last[:a.check] - ref).abs()
        print(f"{name:36s} {float(err.max()):14.3g} {int((err > 1).sum()):10d}")
    if len(runs) > 1:
        ours = next(iter(runs.values())).last
        for name, fn in list(runs.items())[1:]:
            diff = fn.last - ours
            print(f"{name} minus {next(iter(runs))} on all {a.queries} queries: max {float(diff.max()):.3g}, "
                  f"min {float(diff.min()):.3g}, {int((diff.abs() > 1).sum())} queries off by > 1 nat")


if __name__ == "__main__":
    main()
