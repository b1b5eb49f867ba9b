"""The baseline a user would write: a textbook DCGAN in plain PyTorch (Radford et al. 2016, as in the PyTorch
DCGAN tutorial: BatchNorm, ReLU generator with tanh output, LeakyReLU discriminator, binary cross-entropy,
Adam(2e-4, 0.5, 0.999), batch 64), with the channel widths of latentatlas's `dcgan` (latent 64, width 32).

Trains on the full MNIST training images for a wall-clock budget, then writes N samples as a samples
.npz (``arr_0`` uint8 N x 28 x 28 x 1) that ``latentatlas evaluate`` scores.  It also serves as the plain
loop of ``gan_throughput.py`` (``--steps``).  Usage:
    python bench/plain_dcgan.py --minutes 10 --out /tmp/plain-dcgan.npz [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def generator(latent: int = 64, width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent, 2 * width * 7 * 7), nn.Unflatten(1, (2 * width, 7, 7)), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())


def discriminator(width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))


def load_mnist_train(root: Path) -> torch.Tensor:
    """The 60,000 training digits as float (N, 1, 28, 28) in [-1, 1] (IDX files, gzipped or not)."""
    import gzip

    path = next(p for p in (root / "train-images-idx3-ubyte.gz", root / "train-images-idx3-ubyte") if p.exists())
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    return torch.from_numpy(images.astype(np.float32) / 127.5 - 1.0)


def train(images: torch.Tensor, *, minutes: float | None = None, steps: int | None = None, seed: int = 0,
          latent: int = 64, width: int = 32, batch: int = 64) -> tuple[nn.Module, dict]:
    """Train until ``minutes`` of wall clock or ``steps`` generator steps; returns G and timing figures."""
    torch.manual_seed(seed)
    g_net, d_net = generator(latent, width), discriminator(width)
    opt_g = torch.optim.Adam(g_net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    done, epochs, start = 0, 0, time.perf_counter()
    while True:
        order = torch.randperm(images.shape[0])
        for i in range(0, images.shape[0] - batch + 1, batch):
            real = images[order[i:i + batch]]
            fake = g_net(torch.randn(batch, latent))
            loss_d = F.binary_cross_entropy_with_logits(d_net(real).squeeze(1), ones) + \
                F.binary_cross_entropy_with_logits(d_net(fake.detach()).squeeze(1), zeros)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(d_net(fake).squeeze(1), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            done += 1
            if (steps is not None and done >= steps) or \
                    (minutes is not None and time.perf_counter() - start >= 60 * minutes):
                seconds = time.perf_counter() - start
                return g_net.eval(), {"steps": done, "epochs": epochs + i / images.shape[0], "seconds": seconds,
                                      "images_per_second": done * batch / seconds}
        epochs += 1


@torch.no_grad()
def sample(g_net: nn.Module, n: int, *, latent: int = 64, seed: int = 1) -> np.ndarray:
    """n samples as uint8 (n, 28, 28, 1)."""
    z = torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))
    x = torch.cat([g_net(z[i:i + 500]) for i in range(0, n, 500)])
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(here.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--out", default="/tmp/plain-dcgan.npz")
    args = parser.parse_args()
    g_net, info = train(load_mnist_train(Path(args.mnist)), minutes=args.minutes)
    np.savez(args.out, arr_0=sample(g_net, args.n))
    print(f"plain DCGAN: {info['steps']} steps, {info['epochs']:.2f} epochs in {info['seconds']:.0f} s "
          f"({info['images_per_second']:.0f} images/s); samples: {args.out}")


if __name__ == "__main__":
    main()
