"""Full-MNIST run (issue 2): 70,000 digits from the IDX files, VAE with a 16-d latent space, 20 epochs.

Prints seconds per epoch, reconstruction error, and the Fréchet distance (classifier features) of
prior samples vs GMM samples.  Usage:
    python bench/full_mnist.py [--mnist ../shared/data/mnist] [--epochs 20] [--runs-dir /tmp/bench-runs]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from latentatlas import config as config_mod
from latentatlas.runs import pipeline
from latentatlas.runs.report import write_report


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(here.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--runs-dir", default="/tmp/latentatlas-bench-runs")
    parser.add_argument("--name", default="full-mnist-z16")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted training")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cfg = config_mod.from_dict({
        "name": args.name, "runs_dir": args.runs_dir, "seed": 0,
        "data": {"name": "mnist", "root": args.mnist},
        "model": {"family": "vae", "latent_dim": 16, "width": 32},
        "train": {"epochs": args.epochs, "batch_size": 128, "patience": None, "progress": False},
        "sample": {"samplers": ["prior", "gmm:k=10,covariance=full", "gmm:k=100,covariance=full"], "n": 10000},
        "evaluate": {"metrics": ["frechet", "prdc"], "n_real": 10000},
    })
    session = pipeline.train_session(cfg, resume=args.resume)
    pipeline.encode_stage(session)
    pipeline.sample_stage(session)
    pipeline.evaluate_stage(session)
    run = session.run
    write_report(run)

    m = run.read_metrics()
    print(f"\nfull MNIST, VAE z=16, {m['train']['epochs_run']} epochs on {m['train']['device']}")
    print(f"seconds per epoch          {m['train']['seconds_per_epoch']:.1f}")
    print(f"best validation loss (nats) {m['train']['best_score']:.2f}")
    print(f"test reconstruction MSE    {m['reconstruction']['mse']:.5f}  (PSNR {m['reconstruction']['psnr']:.2f} dB)")
    print(f"{'sampler':<34}{'FD (classifier)':>16}{'precision':>11}{'recall':>8}{'test ll':>10}")
    for spec, summary in m["samplers"].items():
        scores = m["evaluate"][run.samples_path(spec).stem]
        print(f"{summary['spec']:<34}{scores['frechet']:>16.3f}{scores.get('precision', float('nan')):>11.3f}"
              f"{scores.get('recall', float('nan')):>8.3f}{summary.get('test_log_likelihood', float('nan')):>10.2f}")
    print(f"report: {run.report_path}")


if __name__ == "__main__":
    main()
