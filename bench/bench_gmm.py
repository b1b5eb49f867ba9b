"""GMM fitting: latentatlas (torch EM) vs scikit-learn's GaussianMixture vs torchgmm, side by side.

Two modes, both in one process on the same synthetic codes (a 50-component mixture with anisotropic,
badly conditioned covariances, float32, like latent means); held-out log-likelihood is the mean over
separate draws of the same mixture.  ``--codes RUN``: a trained run's codes instead (the
training split's posterior means fitted, the test split's held out; --n and --d are then theirs).
Separated synthetic clusters flatter the mixed EM's screen (it keeps 3-5 % of the pairs there, 74 % on
MNIST AE codes), so quote both.

- fixed iterations (default): every implementation from the same k-means++ starting parameters, for
  ``--iters`` EM iterations (tolerance 0, so none stops early).  scikit-learn gets the starting parameters
  directly (its own initialisation skipped); torchgmm the starting means (its API takes no more) and its
  Lightning start-up is counted.
- ``--whole-fit``: ours and scikit-learn each with their own defaults (k-means initialisation, tol 1e-3,
  max_iter 100, reg_covar 1e-6, full covariance), initialisation included, to convergence, alternating
  ours and scikit-learn ``--repeats`` times, repeat r seeding both with seed + r (``--same-seed``: all
  with --seed); prints each run, then median (min, max) seconds, iterations, held-out log-likelihood and
  its paired difference to scikit-learn, and the ratio of the median times.  ``--device cuda`` fits ours
  on the GPU (scikit-learn stays on the CPU with ``--threads``); ``--libs ours`` leaves scikit-learn out.
  ``--grid K1,K2,...``: the whole k selection instead (``gmm:k=K1|K2|...``: each k on 80 % of the codes,
  the lowest BIC, refitted on all), against the same procedure written with scikit-learn.
- ``--start-effect``: whether our k-means start costs held-out likelihood: per seed, our default fit and our
  EM from scikit-learn's k-means labels (scikit-learn's own fit, without its slower EM), paired, with a 95 %
  interval of the mean difference.

    python bench/bench_gmm.py                                   # N=60000, d=64, k=100, 10 iterations
    python bench/bench_gmm.py --n 5000 --d 16 --k 10 --iters 5  # smoke run
    python bench/bench_gmm.py --whole-fit --n 30000 --d 32 --k 20
    python bench/bench_gmm.py --whole-fit --codes /tmp/latentatlas-families/ae --k 100
    python bench/bench_gmm.py --whole-fit --codes /tmp/latentatlas-families/ae --grid 10,20,50,100
    python bench/bench_gmm.py --whole-fit --n 60000 --d 64 --k 100 --ours-dtypes mixed,float64
    python bench/bench_gmm.py --whole-fit --device cuda --threads 16 --ours-dtypes mixed,float64
    python bench/bench_gmm.py --start-effect --repeats 20            # N=60000, d=64, k=100
    python bench/bench_gmm.py --n 60000 --d 256 --k 500 --iters 1 --sk-dtype float32
    python bench/bench_gmm.py --n 1000000 --d 64 --k 100 --iters 2 --libs ours --memory-gib 1
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time
import warnings

import numpy as np
import scipy.stats
import torch

from timing import Timed, add_device, commit, load_average, threads, versions

from latentatlas.latent.samplers import GMM
from latentatlas.latent.samplers import gmm_em as em
from latentatlas.latent.samplers import gmm_kmeans as kmeans


def run_codes(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A run's codes: (training split, test split) posterior means, float32."""
    from latentatlas.runs.pipeline import training_codes
    from latentatlas.runs.store import Run

    run = Run.open(path)
    return tuple(training_codes(run, "mean", split).float() for split in ("train", "test"))


def make_codes(n: int, d: int, true_k: int, seed: int) -> torch.Tensor:
    """n draws of a fixed random mixture (the same mixture for every seed): (n, d) float32."""
    gm = torch.Generator().manual_seed(1234)
    centers = torch.randn(true_k, d, generator=gm) * 2.0
    mix = torch.randn(true_k, d, d, generator=gm) / math.sqrt(d) * torch.rand(true_k, 1, d, generator=gm)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(true_k, (n,), generator=g)
    out = torch.empty(n, d)
    for start in range(0, n, 100_000):
        lab = labels[start:start + 100_000]
        eps = torch.randn(len(lab), d, generator=g)
        out[start:start + len(lab)] = centers[lab] + torch.bmm(mix[lab], eps[:, :, None])[:, :, 0] + 0.05 * eps
    return out


def start(x: torch.Tensor, k: int, covariance: str, seed: int, reg: float) -> dict:
    """Shared starting parameters: k-means++ seeds on (at most 20000) codes, then one hard M-step."""
    g = torch.Generator().manual_seed(seed)
    xc = x.double() - x.double().mean(0)
    sub = xc[torch.randperm(len(xc), generator=g)[:20000]]
    return hard_start(x, kmeans.nearest(xc, kmeans.kmeans_plusplus(sub, k, generator=g), 4096), k, covariance, reg)


def hard_start(x: torch.Tensor, labels: torch.Tensor, k: int, covariance: str, reg: float) -> dict:
    """Starting parameters from a hard assignment ``labels`` (n,): one M-step in float64, as GMM's ``init``."""
    xc = x.double()
    shift = xc.mean(0)
    xc -= shift
    mix = em.m_step(em.hard_stats(em.FeatureBatches(xc, covariance, 4096, False), labels, k), covariance, reg)
    return {"weights": mix.weights, "means": mix.means + shift, "covariances": mix.covariances}


def run_ours(x, val, init, a, dtype):
    m = GMM(k=a.k, covariance=a.covariance, max_iter=a.iters, tol=0.0, reg_covar=a.reg, dtype=dtype,
            max_memory_gib=a.memory_gib)
    t = time.perf_counter()
    m.fit(x, init=init)
    fit_s = time.perf_counter() - t
    note = f"jitter on {int((m.reg_added_ > 0).sum())} comps (max {float(m.reg_added_.max()):.2g})" \
        if bool((m.reg_added_ > 0).any()) else ""
    return fit_s, m.score(val), note


def run_sklearn(x, val, init, a):
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    class GivenStart(GaussianMixture):  # skip sklearn's own initialisation: start from `init`
        def _initialize_parameters(self, X, random_state, xp=None):
            self._initialize(X, None)

    dt = np.float32 if a.sk_dtype == "float32" else np.float64
    cov = init["covariances"].numpy()
    prec = np.linalg.inv(cov) if a.covariance in ("full", "tied") else 1.0 / cov
    prec = (prec + np.swapaxes(prec, -1, -2)) / 2 if a.covariance in ("full", "tied") else prec
    gm = GivenStart(a.k, covariance_type=a.covariance, max_iter=a.iters, tol=0.0, reg_covar=a.sk_reg,
                    weights_init=init["weights"].numpy(), means_init=init["means"].numpy(), precisions_init=prec)
    X, V = x.numpy().astype(dt), val.numpy().astype(dt)
    with threadpool_limits(a.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        try:
            gm.fit(X)
        except Exception as e:  # noqa: BLE001 - report the failure in the table
            return time.perf_counter() - t, float("nan"), f"FAILED: {str(e)[:70]}"
        fit_s = time.perf_counter() - t
        return fit_s, float(gm.score(V)), ""


def run_torchgmm(x, val, init, a):
    try:
        from torchgmm.bayes import GaussianMixture
    except ImportError as e:
        return float("nan"), float("nan"), f"not installed ({e})"
    import logging
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    gm = GaussianMixture(a.k, covariance_type=a.covariance, init_means=init["means"].float(),
                         convergence_tolerance=0.0, covariance_regularization=a.reg,
                         trainer_params={"max_epochs": a.iters, "accelerator": "cpu", "devices": 1,
                                         "enable_progress_bar": False, "enable_model_summary": False})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        try:
            gm.fit(x)
        except Exception as e:  # noqa: BLE001
            return time.perf_counter() - t, float("nan"), f"FAILED: {type(e).__name__}: {str(e)[:60]}"
        fit_s = time.perf_counter() - t
        return fit_s, -float(gm.score(val)), "Lightning start-up included"


def whole_fit(x, val, a) -> None:
    """Ours (each of --ours-dtypes) and scikit-learn from their own initialisation to convergence, alternating."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    dt = np.float32 if a.sk_dtype == "float32" else np.float64
    X, V = x.numpy().astype(dt), val.numpy().astype(dt)
    dtypes = a.ours_dtypes.split(",")
    xd, vd = x.to(a.device), val.to(a.device)

    grid = [int(k) for k in a.grid.split(",")] if a.grid else None
    count = "selected k" if grid else "iterations"   # the third column of each row

    def ours(dtype, seed):
        m = GMM(k=grid or a.k, covariance=a.covariance, dtype=dtype, max_memory_gib=a.memory_gib, seed=seed)
        seconds = Timed(lambda: m.fit(xd))()
        return seconds, m.n_components_ if grid else m.n_iter_, m.converged_, m.score(vd)

    def sklearn(seed):
        """One fit, or with --grid the selection a user writes: each k on a random 80 % of the codes, the
        lowest BIC there, that k refitted on all codes (what ``gmm:k=K1|K2|...`` does)."""
        def fit(k, codes):
            return GaussianMixture(k, covariance_type=a.covariance, random_state=seed).fit(codes)

        with threadpool_limits(a.threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            if grid:
                train = X[np.random.default_rng(seed).permutation(len(X))[len(X) // 5:]]
                gm = fit(min(grid, key=lambda k: fit(k, train).bic(train)), X)
            else:
                gm = fit(a.k, X)
            return (time.perf_counter() - t, gm.n_components if grid else gm.n_iter_, gm.converged_,
                    float(gm.score(V)))

    seeds = [a.seed if a.same_seed else a.seed + r for r in range(a.repeats)]
    print(f"{versions(('torch', 'scikit-learn'))}; latentatlas commit {commit()}; threads: {threads()}")
    print(f"load average at start: {load_average()}")
    print(f"whole fit on {a.codes or 'synthetic codes (make_codes)'}: N={a.n} d={a.d} "
          f"k={'selected by BIC from ' + a.grid if grid else a.k} "
          f"covariance={a.covariance} threads={a.threads} ours on {a.device}; each library's "
          f"defaults and own k-means initialisation (included), tol 1e-3, max_iter 100, reg_covar 1e-6; "
          f"scikit-learn on {a.sk_dtype} codes; {a.repeats} alternating repeats, repeat r seeding every library "
          f"with {'the same seed' if a.same_seed else 'seed + r'} ({seeds})")
    sk_name = f"scikit-learn ({a.sk_dtype})"
    runs = {f"latentatlas ({d})": (lambda seed, d=d: ours(d, seed)) for d in dtypes}
    if "sklearn" in a.libs:
        runs[sk_name] = sklearn
    with warnings.catch_warnings():  # warm-up on a small problem: first calls allocate and dispatch
        warnings.simplefilter("ignore")
        for d in dtypes:
            GMM(k=5, covariance=a.covariance, dtype=d, max_iter=2).fit(xd[:2000])
        GaussianMixture(5, covariance_type=a.covariance, max_iter=2).fit(X[:2000])
    results = {name: [] for name in runs}
    for seed in seeds:
        for name, run in runs.items():
            results[name].append(run(seed))
            secs, it, conv, ll = results[name][-1]
            print(f"seed {seed}  {name:28s} {secs:8.2f} s  {it:3d} {count}{'' if conv else ' (not converged)'}  "
                  f"held-out ll {ll:.6f}", flush=True)
    print(f"load average at end: {load_average()}")
    print(f"{'implementation':28s} {'median s':>9s} {'(min, max)':>18s} {count:>11s} {'held-out ll':>13s} "
          + (f"{'minus sklearn (min, max)':>34s}" if sk_name in runs else ""))
    med = {}
    for name, rows in results.items():
        secs = [row[0] for row in rows]
        med[name] = statistics.median(secs)
        its = statistics.median(row[1] for row in rows)
        gain = [row[3] - sk[3] for row, sk in zip(rows, results.get(sk_name, []))]
        print(f"{name:28s} {med[name]:9.2f} ({min(secs):7.2f}, {max(secs):7.2f}) {its:11g} "
              f"{statistics.median(row[3] for row in rows):13.6f} "
              + (f"{statistics.median(gain):+12.6f} ({min(gain):+.6f}, {max(gain):+.6f})" if gain else ""))
    for name in runs if sk_name in runs else ():
        if name != sk_name:
            print(f"speed-up of {name} over scikit-learn (ratio of medians): {med[sk_name] / med[name]:.1f}x")
    print(f"({count}: median; held-out ll: median over the repeats, and the median of the paired difference to "
          "scikit-learn with the same seed)")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


def start_effect(x, val, a) -> None:
    """How much of the held-out difference to scikit-learn is the k-means start: per seed, our default fit
    against our EM from scikit-learn's own start (``KMeans(k, n_init=1, random_state=seed)`` labels, one
    M-step: what GaussianMixture's default does; our EM from there reproduces its fit), paired."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    seeds = [a.seed + r for r in range(a.repeats)]
    print(f"{versions(('torch', 'scikit-learn'))}; latentatlas commit {commit()}; threads: {threads()}")
    print(f"load average at start: {load_average()}")
    print(f"start effect on {a.codes or 'synthetic codes (make_codes)'}: N={a.n} d={a.d} k={a.k} "
          f"covariance={a.covariance}; seeds {seeds}; EM defaults (tol 1e-3, max_iter 100, reg_covar 1e-6)")
    diffs, ours_ll, theirs_ll = [], [], []
    for seed in seeds:
        ours = GMM(k=a.k, covariance=a.covariance, seed=seed).fit(x)
        with threadpool_limits(a.threads):
            labels = KMeans(a.k, n_init=1, random_state=seed).fit(x.double().numpy()).labels_
        init = hard_start(x, torch.from_numpy(labels).long(), a.k, a.covariance, 1e-6)
        theirs = GMM(k=a.k, covariance=a.covariance, seed=seed).fit(x, init=init)
        ours_ll.append(ours.score(val))
        theirs_ll.append(theirs.score(val))
        diffs.append(ours_ll[-1] - theirs_ll[-1])
        print(f"seed {seed}: our start {ours_ll[-1]:.6f} ({ours.n_iter_} it)  scikit-learn's start "
              f"{theirs_ll[-1]:.6f} ({theirs.n_iter_} it)  difference {diffs[-1]:+.6f}", flush=True)
    print(f"load average at end: {load_average()}")
    mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs))
    t975 = scipy.stats.t.ppf(0.975, len(diffs) - 1)
    print(f"held-out ll, our start minus scikit-learn's (nats/code): median {statistics.median(diffs):+.4f}, "
          f"mean {mean:+.4f}, 95 % interval ({mean - t975 * se:+.4f}, {mean + t975 * se:+.4f}); ours higher on "
          f"{sum(v > 0 for v in diffs)} of {len(diffs)} seeds")
    print(f"seed-to-seed spread (standard deviation) of the held-out ll: our start {statistics.stdev(ours_ll):.4f}, "
          f"scikit-learn's {statistics.stdev(theirs_ll):.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--true-k", type=int, default=50)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--covariance", default="full")
    p.add_argument("--reg", type=float, default=1e-6, help="reg_covar of ours and torchgmm")
    p.add_argument("--sk-reg", type=float, default=1e-6, help="reg_covar of scikit-learn")
    p.add_argument("--sk-dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--ours-dtypes", default="mixed,float64")
    p.add_argument("--libs", default="ours,sklearn,torchgmm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--memory-gib", type=float, default=2.0, help="max_memory_gib of ours")
    p.add_argument("--seed", type=int, default=0)
    add_device(p)
    p.add_argument("--whole-fit", action="store_true", help="each library's defaults, own init, to convergence")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats of --whole-fit")
    p.add_argument("--same-seed", action="store_true", help="--whole-fit: every repeat with --seed (else seed + r)")
    p.add_argument("--grid", default=None, help="--whole-fit: k selected by BIC from these (comma-separated)")
    p.add_argument("--start-effect", action="store_true",
                   help="our fit vs our EM from scikit-learn's k-means start, paired over --repeats seeds")
    p.add_argument("--codes", default=None, help="a run folder: fit its training codes, hold out its test codes")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.codes:
        x, val = run_codes(a.codes)
        a.n, a.d = x.shape
    else:
        x, val = make_codes(a.n, a.d, a.true_k, a.seed), make_codes(min(10000, max(1000, a.n // 5)), a.d, a.true_k,
                                                                    a.seed + 1)
    if a.whole_fit or a.start_effect:
        (start_effect if a.start_effect else whole_fit)(x, val, a)
        return
    t = time.perf_counter()
    init = start(x, a.k, a.covariance, a.seed, max(a.reg, a.sk_reg))
    print(f"N={a.n} d={a.d} k={a.k} covariance={a.covariance} iters={a.iters} threads={a.threads}; "
          f"shared start computed in {time.perf_counter() - t:.1f}s")
    print(f"{'implementation':38s} {'fit s':>9s} {'s/iter':>8s} {'held-out ll':>12s}  note")
    libs, rows = a.libs.split(","), []
    for dt in ("mixed", "float64", "float32"):  # warm-up: torch's first calls allocate and dispatch
        GMM(k=2, covariance=a.covariance, max_iter=1, dtype=dt).fit(x[:500])
    runs = [(f"latentatlas ({dt})", lambda dt=dt: run_ours(x, val, init, a, dt))
            for dt in (a.ours_dtypes.split(",") if "ours" in libs else [])]
    if "sklearn" in libs:
        runs.append((f"scikit-learn ({a.sk_dtype}, reg {a.sk_reg:g})", lambda: run_sklearn(x, val, init, a)))
    if "torchgmm" in libs:
        runs.append(("torchgmm (float32)", lambda: run_torchgmm(x, val, init, a)))
    for name, run in runs:  # each row is printed as soon as it is measured
        fit_s, ll, note = run()
        rows.append((name, fit_s, ll, note))
        print(f"{name:38s} {fit_s:9.2f} {fit_s / a.iters:8.2f} {ll:12.4f}  {note}", flush=True)
    sk = next((r[1] for r in rows if r[0].startswith("scikit") and not r[3].startswith("FAILED")), None)
    if sk:
        print("speed-up over scikit-learn (same process, same start, same iterations):")
        for name, fit_s, _, _ in rows:
            print(f"  {name:38s} {sk / fit_s:6.1f}x")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
