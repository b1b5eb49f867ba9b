"""Fréchet distance at d=2048: latentatlas (symmetric eigen-decompositions, float64) vs pytorch-fid's
``calculate_frechet_distance`` (scipy.linalg.sqrtm of S1 S2), on the same statistics, side by side.

pytorch-fid's module imports torchvision at import time, which latentatlas does not need; when that
import fails this script runs a line-for-line replica of its ``calculate_frechet_distance`` (marked
"replica" in the output).  Run: ``python bench/bench_frechet.py [--d 2048] [--n 10000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.linalg
import torch

from latentatlas.metrics.features import features_to_stats
from latentatlas.metrics.frechet import FrechetReference, frechet


def pytorch_fid_replica(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid 0.3.0 ``calculate_frechet_distance``, same steps (sqrtm of the product)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
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


def best_of(fn, repeat: int):
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return float(value), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    (mu1, s1), (mu2, s2) = make_stats(args.n, args.d, 0)
    ref_fn, ref_name = reference_impl()
    np_args = (mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    warnings.simplefilter("ignore")
    v_ref, t_ref = best_of(lambda: ref_fn(*np_args), max(1, args.repeat - 1))
    v_ours, t_ours = best_of(lambda: frechet((mu1, s1), (mu2, s2)), args.repeat)
    cached = FrechetReference((mu1, s1))
    v_cached, t_cached = best_of(lambda: frechet(cached, (mu2, s2)), args.repeat)
    print(f"Fréchet distance, d={args.d}, statistics of {args.n} rows each; torch threads {torch.get_num_threads()}")
    print(f"{'implementation':58s} {'seconds':>9s} {'value':>16s} {'speed-up':>9s}")
    print(f"{ref_name:58s} {t_ref:9.3f} {v_ref:16.8f} {1.0:9.1f}")
    print(f"{'latentatlas frechet (Cholesky + eigvalsh)':58s} {t_ours:9.3f} {v_ours:16.8f} {t_ref / t_ours:9.1f}")
    print(f"{'latentatlas, FrechetReference reused (eigvalsh only)':58s} {t_cached:9.3f} {v_cached:16.8f} "
          f"{t_ref / t_cached:9.1f}")
    print(f"relative difference to {ref_name.split(' (')[0]}: {abs(v_ours - v_ref) / abs(v_ref):.2e}")


if __name__ == "__main__":
    main()
