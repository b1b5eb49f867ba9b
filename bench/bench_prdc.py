"""Precision / recall / density / coverage: latentatlas (chunked, float32 GEMM) vs the ``prdc`` package
(Naeem et al.'s reference code: full N x N distance matrices with scikit-learn), side by side.

Each run happens in its own subprocess so its peak resident memory (ru_maxrss) is its own.
  python bench/bench_prdc.py                 # 20,000 vs 20,000 at d=2048 (ours, prdc) + 100,000 vs 100,000 (ours)
  python bench/bench_prdc.py --skip-big      # only the side-by-side comparison
The row "latentatlas, reference radii precomputed" builds a PRDCReference once (real-real k-NN radii;
its build time is printed separately) and times only the per-sample-set part, ``ref.score(fake)``.
Needs ``pip install --no-deps prdc`` (numpy + scikit-learn only).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def make_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """real ~ N(0, I), fake ~ N(0.05, I) in float32 (prdc's README setting, slightly shifted)."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d), dtype=np.float32)
    fake = rng.standard_normal((n, d), dtype=np.float32)
    fake += 0.05
    return real, fake


PRECOMPUTED = "latentatlas, reference radii precomputed"
WORKERS = {"latentatlas": "latentatlas", "prdc": "prdc", "latentatlas-ref": PRECOMPUTED}


def worker(which: str, n: int, d: int, k: int) -> dict:
    build_seconds = None
    if which == "prdc":
        import contextlib
        import io

        from prdc import compute_prdc

        def compute(real, fake):
            with contextlib.redirect_stdout(io.StringIO()):   # compute_prdc prints the counts
                return compute_prdc(real, fake, k)
    else:
        import torch

        from latentatlas.metrics.prdc import PRDCReference, prdc

        def compute(real, fake):
            if which == "latentatlas-ref":
                return ref.score(torch.from_numpy(fake))        # ref: built below, before the timing
            return prdc(torch.from_numpy(real), torch.from_numpy(fake), k)
    real, fake = make_features(n, d, 0)
    if which == "latentatlas-ref":
        t = time.perf_counter()
        ref = PRDCReference.build(torch.from_numpy(real), k, k_dc=k)
        build_seconds = time.perf_counter() - t
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t, cpu = time.perf_counter(), time.process_time()
    out = compute(real, fake)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"which": WORKERS[which], "n": n, "d": d, "build_seconds": build_seconds, "seconds": seconds,
            "cpu_seconds": cpu, "peak_gib": peak, "data_gib": rss_data, **{key: float(v) for key, v in out.items()}}


def run(which: str, n: int, d: int, k: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", which, "--n", str(n), "--d", str(d), "--k", str(k)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"which": WORKERS[which], "n": n, "d": d, "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def show(rows: list[dict]) -> None:
    print(f"{'implementation':40s} {'N':>7s} {'d':>5s} {'seconds':>9s} {'cpu s':>8s} {'peak GiB':>9s} "
          f"{'(data GiB)':>10s} {'precision':>9s} {'recall':>7s} {'density':>8s} {'coverage':>8s}")
    for r in rows:
        if "error" in r:
            print(f"{r['which']:40s} {r['n']:7d} {r['d']:5d} failed: {r['error']}")
            continue
        print(f"{r['which']:40s} {r['n']:7d} {r['d']:5d} {r['seconds']:9.1f} {r['cpu_seconds']:8.1f} "
              f"{r['peak_gib']:9.2f} {r['data_gib']:10.2f} {r['precision']:9.4f} {r['recall']:7.4f} "
              f"{r['density']:8.4f} {r['coverage']:8.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=tuple(WORKERS))
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--big-n", type=int, default=100000)
    parser.add_argument("--big-d", type=int, default=2048)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-prdc", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.d, args.k)))
        return
    print(f"precision/recall/density/coverage, k={args.k}; peak = max resident memory of the subprocess")
    rows = [run("latentatlas", args.n, args.d, args.k)]
    show(rows)
    if not args.skip_prdc:
        rows.append(run("prdc", args.n, args.d, args.k))
        show(rows[-1:])
        if "error" not in rows[0] and "error" not in rows[1]:
            same = all(abs(rows[0][m] - rows[1][m]) < 1e-3 for m in ("precision", "recall", "density", "coverage"))
            print(f"speed-up {rows[1]['seconds'] / rows[0]['seconds']:.1f}x, memory {rows[1]['peak_gib']:.2f} vs "
                  f"{rows[0]['peak_gib']:.2f} GiB, same values: {same}", flush=True)
    pre = run("latentatlas-ref", args.n, args.d, args.k)
    show([pre])
    if "error" not in pre and "error" not in rows[0]:
        same = all(pre[m] == rows[0][m] for m in ("precision", "recall", "density", "coverage"))
        print(f"reference build (real-real radii, once): {pre['build_seconds']:.1f} s; per sample set "
              f"{pre['seconds']:.1f} s vs {rows[0]['seconds']:.1f} s cold; bit-identical to cold: {same}",
              flush=True)
    if not args.skip_big:
        show([run("latentatlas", args.big_n, args.big_d, args.k)])


if __name__ == "__main__":
    main()
