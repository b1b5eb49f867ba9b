"""Precision / recall / density / coverage: latentatlas (chunked, float32 GEMM) vs the ``prdc`` package
(Naeem et al.'s reference code: full N x N distance matrices with scikit-learn), alternating.

Each run happens in its own subprocess so its peak resident memory (ru_maxrss) is its own; only the call is
timed (the features are generated first in the subprocess).  Ours cold, prdc and ours with the reference
radii precomputed alternate ``--repeats`` times (timing.alternate: every run, median, min and max, ratio of
medians); then ours alone at 100,000 vs 100,000 (prdc would need 3 N x N matrices), ``--big-repeats`` times.
  python bench/bench_prdc.py                 # 20,000 vs 20,000 at d=2048 (ours, prdc) + 100,000 vs 100,000 (ours)
  python bench/bench_prdc.py --skip-big      # only the side-by-side comparison
  python bench/bench_prdc.py --big-only      # only ours at 100,000 vs 100,000
The row "latentatlas, reference radii precomputed" builds a PRDCReference once per subprocess (real-real
k-NN radii; its build time is in the run's note) and times only the per-sample-set part, ``ref.score(fake)``.
``--device cuda`` computes ours on the GPU (the features' copy there is inside the timed call; prdc stays
on the CPU, where it runs).  Needs ``pip install --no-deps prdc`` (numpy + scikit-learn only).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
from timing import add_device, add_repeats, alternate, positive_int, protocol, synchronize


def make_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """real ~ N(0, I), fake ~ N(0.05, I) in float32 (prdc's README setting, slightly shifted)."""
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n, d), dtype=np.float32)
    fake = rng.standard_normal((n, d), dtype=np.float32)
    fake += 0.05
    return real, fake


PRECOMPUTED = "latentatlas, reference radii precomputed"
WORKERS = {"latentatlas": "latentatlas", "prdc": "prdc", "latentatlas-ref": PRECOMPUTED}


def worker(which: str, n: int, d: int, k: int, device: str) -> dict:
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
            return prdc(torch.from_numpy(real), torch.from_numpy(fake), k, device=device)
    real, fake = make_features(n, d, 0)
    if which == "latentatlas-ref":
        t = time.perf_counter()
        ref = PRDCReference.build(torch.from_numpy(real), k, k_dc=k, device=device)
        synchronize()
        build_seconds = time.perf_counter() - t
    if which != "prdc" and torch.device(device).type == "cuda":   # the CUDA context and cuBLAS, outside the timing
        (torch.ones(8, 8, device=device) @ torch.ones(8, 8, device=device)).sum().item()
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t, cpu = time.perf_counter(), time.process_time()
    out = compute(real, fake)
    synchronize()
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"which": WORKERS[which], "n": n, "d": d, "build_seconds": build_seconds, "seconds": seconds,
            "cpu_seconds": cpu, "peak_gib": peak, "data_gib": rss_data, **{key: float(v) for key, v in out.items()}}


def run(which: str, n: int, d: int, k: int, device: str) -> dict:
    """One worker subprocess: its measurement dict; RuntimeError with the end of its stderr if it fails."""
    cmd = [sys.executable, __file__, "--worker", which, "--n", str(n), "--d", str(d), "--k", str(k),
           "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{WORKERS[which]} at N={n}, d={d} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


METRICS = ("precision", "recall", "density", "coverage")


def measured(which: str, n: int, d: int, k: int, device: str, rows: list[dict]):
    """A run for timing.alternate: the subprocess's seconds, with its CPU time, memory and values as the note;
    each measurement dict is appended to ``rows``."""
    def once() -> tuple[float, str]:
        r = run(which, n, d, k, device)
        rows.append(r)
        build = "" if r["build_seconds"] is None else f", reference build {r['build_seconds']:.1f} s"
        return r["seconds"], (f"cpu {r['cpu_seconds']:.1f} s, peak {r['peak_gib']:.2f} GiB (before the call "
                              f"{r['data_gib']:.2f}){build}; " + " ".join(f"{m} {r[m]:.4f}" for m in METRICS))
    return once


def same_counts(a: dict, b: dict, n: int, k: int) -> bool:
    """The four values are the same counts (N real = M fake = n): precision, recall and coverage are counts
    over n rows, density a count over k n; float rounding aside, a difference is at least one count."""
    return all(abs(a[m] - b[m]) * n * (k if m == "density" else 1) < 0.5 for m in METRICS)


def summary(name: str, rows: list[dict]) -> None:
    med = {key: statistics.median(r[key] for r in rows) for key in ("cpu_seconds", "peak_gib")}
    print(f"{name:40s} median cpu {med['cpu_seconds']:7.1f} s, median peak {med['peak_gib']:.2f} GiB; values "
          + " ".join(f"{m} {rows[0][m]:.4f}" for m in METRICS)
          + ("" if all(r[m] == rows[0][m] for r in rows for m in METRICS) else " (CHANGED between runs)"))


def compare(args: argparse.Namespace) -> None:
    """Ours cold, prdc (unless --skip-prdc) and ours with precomputed radii, alternating at --n x --d."""
    names = {"latentatlas": "latentatlas prdc, cold", "prdc": "prdc compute_prdc", "latentatlas-ref": PRECOMPUTED}
    rows: dict[str, list[dict]] = {which: [] for which in names if not (args.skip_prdc and which == "prdc")}
    alternate({names[w]: measured(w, args.n, args.d, args.k, args.device, rows[w]) for w in rows}, args.repeats,
              baseline=None if args.skip_prdc else names["prdc"], digits=1)
    for which, got in rows.items():
        summary(names[which], got)
    cold = rows["latentatlas"]
    if "prdc" in rows:
        same = all(same_counts(a, b, args.n, args.k) for a, b in zip(cold, rows["prdc"]))
        print(f"cold latentatlas and prdc give the same counts in every run: {same}")
    print("precomputed radii bit-identical to cold in every run: "
          f"{all(a[m] == b[m] for a, b in zip(cold, rows['latentatlas-ref']) for m in METRICS)}; reference build "
          f"median {statistics.median(r['build_seconds'] for r in rows['latentatlas-ref']):.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=tuple(WORKERS))
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=2048)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--big-n", type=int, default=100000)
    parser.add_argument("--big-d", type=int, default=2048)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--big-only", action="store_true", help="only the runs of ours at --big-n")
    parser.add_argument("--skip-prdc", action="store_true")
    add_repeats(parser)
    add_device(parser)
    parser.add_argument("--big-repeats", type=positive_int, default=None, help="runs at --big-n (default: --repeats)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.d, args.k, args.device)))
        return
    if args.skip_big and args.big_only:
        raise SystemExit("--skip-big and --big-only: expected at most one of them, got both")
    if not (args.skip_prdc or args.big_only) and importlib.util.find_spec("prdc") is None:
        raise SystemExit("prdc: not installed; pip install --no-deps prdc, or pass --skip-prdc")
    for module in ("torch", "sklearn"):   # their thread pools, as the workers will have them, for the protocol
        importlib.import_module(module)
    sizes = [] if args.big_only else [f"real and fake {args.n} x {args.d}"]
    sizes += [] if args.skip_big else [f"ours alone at {args.big_n} x {args.big_d}"]
    protocol("precision / recall / density / coverage: latentatlas vs the prdc package",
             {"sizes": ", then ".join(sizes),
              "data": "float32, real N(0, I), fake N(0.05, I), seed 0", "k": f"{args.k} (k_dc {args.k})",
              "device": f"latentatlas on {args.device}, prdc on the CPU",
              "timed": "the call only, in a fresh subprocess per run (peak = its max RSS); the precomputed row "
                       "times ref.score(fake) after PRDCReference.build (build time in its note)",
              "thread settings": "each subprocess's defaults, as below; prdc asks scikit-learn for n_jobs=8"},
             ("torch", "numpy", "scipy", "scikit-learn", "prdc"))
    if not args.big_only:
        compare(args)
    if not args.skip_big:
        big: list[dict] = []
        cold = measured("latentatlas", args.big_n, args.big_d, args.k, args.device, big)
        alternate({f"latentatlas prdc, cold, N={args.big_n}": cold}, args.big_repeats or args.repeats, digits=1)
        summary(f"latentatlas prdc, N={args.big_n}", big)


if __name__ == "__main__":
    main()
