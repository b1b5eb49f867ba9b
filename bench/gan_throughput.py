"""Training throughput of `dcgan` (issue 8): latentatlas's trainer beside the same networks and losses in a
plain PyTorch loop, so the difference is what the framework costs (phases, sharded noise, logging,
checkpointing, the EMA hook).

Both train the model of configs/mnist-dcgan.yaml (its loss and R1 penalty, EMA, TTUR) on the same
full-MNIST training images for ``--steps`` batches of 64, alternating ``--repeats`` times; the median
images/s of each is printed with min and max.  Run it with the machine to itself.  ``--device`` sets where
both train (networks, images and noise; the noise is drawn by a CPU generator and copied, as the trainer's
is); ``--mnist synthetic`` times them on 54,000 random images where the data folder is absent (a lent GPU
machine; speed does not depend on the pixels).  Usage:
    python bench/gan_throughput.py [--steps 300] [--repeats 5] [--mnist ../shared/data/mnist | synthetic]
        [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from budget import config_model, synthetic_images, trainer_against_plain, trainer_images_per_second, warm_up
from timing import add_device, add_repeats, protocol, synchronize

ROOT = Path(__file__).resolve().parents[1]


def build():
    """(model, config) of configs/mnist-dcgan.yaml (10 classes), its weights drawn with seed 0."""
    return config_model(ROOT / "configs" / "mnist-dcgan.yaml", (1, 28, 28), n_classes=10)


def ours(data, steps: int, device: str) -> float:
    """images/s of latentatlas.training.train for ``steps`` batches of 64 (set-up and checkpoint included)."""
    model, cfg = build()
    return trainer_images_per_second(model, data, lr=cfg.train.lr, steps=steps, batch=64, device=device)


def plain(images: torch.Tensor, steps: int, device: str) -> float:
    """images/s of a hand-written loop over the same networks, losses (the config's non-saturating or hinge
    loss, R1 penalty), optimizers and EMA update."""
    from latentatlas.models.ema import ema_decay_at, ema_update

    model, _ = build()
    m, c = model.to(device), model.config
    opt_d = torch.optim.Adam(m.discriminator.parameters(), lr=c.lr_discriminator, betas=tuple(c.betas))
    opt_g = torch.optim.Adam(m.generator.parameters(), lr=c.lr_generator, betas=tuple(c.betas))
    hinge = c.loss == "hinge"
    g = torch.Generator().manual_seed(0)

    def noise() -> torch.Tensor:
        return torch.randn(64, c.latent_dim, generator=g).to(device, non_blocking=True)

    synchronize()
    start = time.perf_counter()
    images = images.to(device)
    order = torch.randperm(images.shape[0], generator=g).to(device)
    for step in range(steps):
        real = (images[order[step * 64:(step + 1) * 64]].float().div_(255) * 2 - 1).requires_grad_(c.penalty == "r1")
        with torch.no_grad():
            fake = torch.sigmoid(m.generator(noise())) * 2 - 1
        real_score, fake_score = m.discriminator(real)[0], m.discriminator(fake)[0]
        if hinge:
            loss_d = F.relu(1 - real_score).mean() + F.relu(1 + fake_score).mean()
        else:
            loss_d = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        if c.penalty == "r1":
            (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
            loss_d = loss_d + 0.5 * c.penalty_weight * grad.flatten(1).pow(2).sum(1).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        fake_score = m.discriminator(torch.sigmoid(m.generator(noise())) * 2 - 1)[0]
        loss_g = -fake_score.mean() if hinge else F.softplus(-fake_score).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        ema_update(m.generator_ema, m.generator, ema_decay_at(step + 1, c.ema_decay))
    synchronize()
    return steps * 64 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="the full-MNIST IDX folder, or 'synthetic' (54,000 random 28x28 images: timing only)")
    parser.add_argument("--steps", type=int, default=300)
    add_device(parser)
    add_repeats(parser)
    args = parser.parse_args()
    from latentatlas.config import DataConfig
    from latentatlas.data import load_dataset

    if args.mnist == "synthetic":
        data = synthetic_images(54000, (1, 28, 28))
    else:
        data = load_dataset(DataConfig(name="mnist", root=args.mnist), seed=0)
    images = data.part("train").images
    protocol("dcgan training throughput: latentatlas's train() vs a plain loop, same networks and losses",
             {"config": "configs/mnist-dcgan.yaml", "data": f"{args.mnist} ({len(images)} training images)",
              "batch": 64, "steps per run": args.steps, "device": args.device, "repeats": args.repeats}, ("torch",))
    warm_up()
    trainer_against_plain(lambda: ours(data, args.steps, args.device), lambda: plain(images, args.steps, args.device),
                          args.repeats)

if __name__ == "__main__":
    main()
