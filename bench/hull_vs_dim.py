"""Fraction of MNIST images inside the convex hull of training images vs dimension (after projection on
the top-k principal directions), for test images and held-out training images: the experiment of
Balestriero et al. 2021 ("Learning in high dimension always amounts to extrapolation"), on pixels.
For a run's latent codes, ``latentatlas geometry`` draws the same curve in latent and pixel space.

    python bench/hull_vs_dim.py [--hull 20000] [--queries 200] [--dims 2 4 8 12 16 24 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from latentatlas.latent.hull import hull_fraction_vs_dim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hull import MNIST, read_idx_images  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hull", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 12, 16, 24, 32])
    args = ap.parse_args()
    torch.set_num_threads(2)
    train = read_idx_images(MNIST / "train-images-idx3-ubyte.gz")
    test = read_idx_images(MNIST / "t10k-images-idx3-ubyte.gz")
    t0 = time.perf_counter()
    curve = hull_fraction_vs_dim(train, test, args.dims, n_hull=args.hull, n_query=args.queries,
                                 generator=torch.Generator().manual_seed(0))
    print(f"MNIST pixels, hull of {args.hull} training images, {args.queries} queries per point "
          f"({time.perf_counter() - t0:.0f} s)")
    print(f"{'dim':>5}{'test inside':>13}{'train (held out) inside':>25}")
    for d, te, tr in zip(curve["dim"], curve["test"], curve["train"]):
        print(f"{d:>5}{te:>13.3f}{tr:>25.3f}")


if __name__ == "__main__":
    main()
