"""Fréchet distance at d=2048: latentatlas (symmetric eigen-decompositions, float64) vs pytorch-fid's
``calculate_frechet_distance`` (scipy.linalg.sqrtm of S1 S2), on the same statistics, alternating
``--repeats`` times (timing.alternate: every run, median, min and max, ratio of medians).

pytorch-fid's module imports torchvision at import time, which latentatlas does not need; when that
import fails this script runs a line-for-line replica of its ``calculate_frechet_distance`` (marked
"replica" in the output).  ``--threads T`` sets torch's threads and limits the BLAS pools (numpy / scipy)
to T as well, so both sides get the same count.  ``--device cuda`` puts our statistics on the GPU (the
distance is then computed there; pytorch-fid's stays on the CPU, where scipy runs).
Run: ``python bench/bench_frechet.py [--d 2048] [--n 10000] [--repeats 5] [--threads T] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits
from timing import Timed, add_device, add_repeats, alternate, protocol

from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import FrechetReference, frechet


def sqrtm(a: np.ndarray) -> np.ndarray:
    """scipy.linalg.sqrtm(a, disp=False)'s matrix, as pytorch-fid calls it (scipy 1.18 dropped ``disp``)."""
    try:
        return scipy.linalg.sqrtm(a, disp=False)[0]
    except TypeError:
        return scipy.linalg.sqrtm(a)


def pytorch_fid_replica(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0 ``calculate_frechet_distance``, same steps (sqrtm of the product)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def reference_impl():
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance
        return calculate_frechet_distance, "pytorch-fid"
    except ImportError:
        return pytorch_fid_replica, "pytorch-fid replica (pytorch_fid needs torchvision, absent)"


def make_stats(n: int, d: int, seed: int):
    """Two feature sets with correlated, non-isotropic covariances, like network features."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5
    a = torch.relu(torch.randn(n, d, generator=g, dtype=torch.float64) @ mix)
    b = torch.relu(torch.randn(n, d, generator=g, dtype=torch.float64) @ (mix * 1.1) + 0.05)
    return features_to_stats(a), features_to_stats(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--n", type=int, default=10000)
    add_repeats(parser)
    add_device(parser)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads and BLAS pool limit (default: each library's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    (mu1, s1), (mu2, s2) = make_stats(args.n, args.d, 0)
    ref_fn, ref_name = reference_impl()
    np_args = (mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    mu1, s1, mu2, s2 = (t.to(args.device) for t in (mu1, s1, mu2, s2))
    warnings.simplefilter("ignore")
    build = Timed(lambda: FrechetReference((mu1, s1)))
    build_s = build()
    runs = {ref_name.split(" (")[0]: Timed(lambda: ref_fn(*np_args)),
            "latentatlas frechet (Cholesky + eigvalsh)": Timed(lambda: frechet((mu1, s1), (mu2, s2))),
            "latentatlas, FrechetReference reused": Timed(lambda: frechet(build.last, (mu2, s2)))}
    protocol(f"Fréchet distance: latentatlas vs {ref_name}",
             {"sizes": f"two feature sets of {args.n} x {args.d}, statistics given", "dtype": "float64",
              "device": f"latentatlas on {args.device}, {ref_name.split(' (')[0]} on the CPU",
              "timed": "one distance from given (mean, covariance) pairs; the reused reference is factored "
                       f"once, untimed here ({build_s:.3f} s)"},
             ("torch", "numpy", "scipy", "pytorch-fid"))
    alternate(runs, args.repeats, baseline=next(iter(runs)))
    values = {name: float(fn.last) for name, fn in runs.items()}
    v_ref = next(iter(values.values()))
    for name, v in values.items():
        print(f"value {name}: {v:.8f} (relative difference to the first: {abs(v - v_ref) / abs(v_ref):.2e})")


if __name__ == "__main__":
    main()
