"""Training throughput on 64x64 CelebA faces (issue 13): latentatlas's trainer beside a plain PyTorch loop
over the same network, loss and optimizer, so the difference is what the framework costs (batching,
phases, health checks, progress, the epoch-end checkpoint).

Both train the beta-VAE of configs/celeba64-betavae.yaml (or ``--config``) on the 8,000 training faces of the
CelebA 10k folder, batch 64, Adam at the config's learning rate, for ``--steps`` batches; the trainer's whole
``train()`` call is timed (set-up and checkpoint included; the data have no validation part, so neither loop
validates).  They alternate ``--repeats`` times; medians with min and max are printed.  Run it with the
machine to itself.  Usage:
    python bench/face_throughput.py [--steps 60] [--repeats 5] [--precision fp32|bf16|fp16] [--device cuda]
        [--celeba ../shared/data/celeba_10k/...tar | synthetic]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from latentatlas.config import PRECISIONS
from budget import (config_model, plain_vae_loop, synthetic_images, train_only, trainer_against_plain,
                    trainer_images_per_second, warm_up)
from timing import add_device, add_repeats, protocol

ROOT = Path(__file__).resolve().parents[1]
TAR = ROOT.parent / "shared" / "data" / "celeba_10k" / "img_align_celeba_89x109.tar"


def build(config: Path):
    """(model, config) of the run config for 64x64 faces, its weights drawn with seed 0."""
    return config_model(config, (3, 64, 64))


def ours(config: Path, data, steps: int, batch: int, precision: str, device: str) -> float:
    """images/s of ``latentatlas.training.train`` for ``steps`` batches."""
    model, cfg = build(config)
    return trainer_images_per_second(model, data, lr=cfg.train.lr, steps=steps, batch=batch, precision=precision,
                                     device=device)


def plain(config: Path, images: torch.Tensor, steps: int, batch: int, precision: str, device: str) -> float:
    """images/s of a hand-written loop (budget.plain_vae_loop) over the model's encoder and decoder, with its
    likelihood and KL weight, Adam over all parameters."""
    model, cfg = build(config)
    c = model.config
    beta = getattr(c, "kl_weight", 0.0) if model.variational else 0.0
    seconds = plain_vae_loop(model.encoder, model.decoder, images, batch=batch, lr=cfg.train.lr, steps=steps,
                             variational=model.variational, beta=beta, likelihood=c.likelihood, precision=precision,
                             device=device)
    return steps * batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celeba", default=str(TAR),
                        help="the CelebA 10k tar, or 'synthetic' (8,000 random 64x64 images: timing only)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "celeba64-betavae.yaml"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    add_device(parser)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="train.precision of the trainer and the plain loop's autocast")
    add_repeats(parser)
    args = parser.parse_args()
    from latentatlas.config import DataConfig
    from latentatlas.data import load_dataset

    if args.celeba == "synthetic":
        data = synthetic_images(8000, (3, 64, 64))
    else:
        data = train_only(load_dataset(DataConfig(name="celeba", root=args.celeba), seed=0).part("train"))
    config = Path(args.config)
    protocol("face training throughput: latentatlas's train() vs a plain loop, same network, loss and Adam",
             {"config": config.name, "data": f"{args.celeba} ({len(data)} training faces, 64x64)",
              "batch": args.batch, "device": args.device, "precision": args.precision, "steps per run": args.steps,
              "repeats": args.repeats}, ("torch",))
    warm_up()
    trainer_against_plain(lambda: ours(config, data, args.steps, args.batch, args.precision, args.device),
                          lambda: plain(config, data.images, args.steps, args.batch, args.precision, args.device),
                          args.repeats)


if __name__ == "__main__":
    main()
