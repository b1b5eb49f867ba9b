"""Do ``torch.compile`` or the channels-last memory format pay for the default MNIST network (issue 14)?

Trains the encoder and decoder of configs/mnist-vae.yaml (the default conv VAE, 220,769 parameters) in the
plain loop of budget.plain_vae_loop (batch 128, Adam 1e-3, BCE + KL) on 54,000 random 28x28 images (speed
does not depend on the pixels), three ways: eager in the default (contiguous, NCHW) memory format;
``channels_last`` (the networks converted with ``.to(memory_format=torch.channels_last)``, so every
convolution's output follows it); and ``torch.compile`` of each network (inductor, default mode).  Each is
built once and warmed up by ``--warm-up`` steps, the first of which compiles (its seconds are printed: a
cold compile, into a fresh inductor cache folder, as a user's first run pays it); then
they alternate ``--repeats`` times for ``--steps`` steps each, per precision of ``--precisions`` (bf16:
autocast, as train.precision does).
    python bench/compile_channels_last.py [--precisions fp32,bf16] [--steps 60] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from budget import config_model, plain_vae_loop, synthetic_images, warm_up
from timing import add_device, add_repeats, alternate, positive_int, protocol, synchronize

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "channels_last", "compile")


def networks(variant: str):
    """(encoder, decoder) of the default MNIST VAE, weights drawn with seed 0, in ``variant``'s form."""
    model, _ = config_model(ROOT / "configs" / "mnist-vae.yaml", (1, 28, 28))
    encoder, decoder = model.encoder, model.decoder
    if variant == "channels_last":
        encoder, decoder = (n.to(memory_format=torch.channels_last) for n in (encoder, decoder))
    elif variant == "compile":
        encoder, decoder = torch.compile(encoder), torch.compile(decoder)
    return encoder, decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--steps", type=positive_int, default=60)
    parser.add_argument("--warm-up", type=positive_int, default=3)
    add_device(parser)
    add_repeats(parser)
    args = parser.parse_args()
    images = synthetic_images(54000, (1, 28, 28)).images
    cache = tempfile.TemporaryDirectory()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name   # read at the first compilation
    protocol("torch.compile and channels-last for the default MNIST VAE, plain loop", {
        "network": "configs/mnist-vae.yaml", "batch": 128, "steps per run": args.steps, "device": args.device,
        "precisions": args.precisions, "variants": ", ".join(VARIANTS)}, ("torch",))
    warm_up()
    for precision in args.precisions.split(","):
        def loop(encoder, decoder, steps: int, precision: str = precision) -> float:
            return plain_vae_loop(encoder, decoder, images, batch=128, lr=1e-3, steps=steps, precision=precision,
                                  device=args.device)

        runs = {}
        for variant in VARIANTS:
            encoder, decoder = networks(variant)
            synchronize()
            start = time.perf_counter()
            loop(encoder, decoder, args.warm_up)
            print(f"{precision} {variant}: the first {args.warm_up} steps {time.perf_counter() - start:.2f} s "
                  "(compilation included)")
            runs[f"{precision} {variant}"] = (lambda e=encoder, d=decoder: 128 * args.steps / loop(e, d, args.steps))
        alternate(runs, args.repeats, baseline=f"{precision} eager", unit="images/s", rate=True, digits=0)


if __name__ == "__main__":
    main()
