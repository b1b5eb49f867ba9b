"""Batched evaluation over a dataset: latentatlas's ``encode_images``, ``decode_codes`` and ``extract_features``
(through ``tensors.map_rows``: uint8 batches to the device through pinned memory, outputs back into pinned
memory, one wait at the end) against the loop a user writes (``model(x.float().div(255).to(device))`` and
``.cpu()`` for each batch, then ``torch.cat``), on ``--n`` random 28x28 images (speed does not depend on the
pixels) with the default MNIST VAE (configs/mnist-vae.yaml, untrained) and the MNIST classifier network the
Fréchet distance uses (untrained); the two alternate ``--repeats`` times (median, min, max), images/s.
    python bench/batched_evaluation.py [--device cuda] [--repeats 7] [--n 60000] [--batch 512]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from budget import config_model, synthetic_images
from timing import add_device, add_repeats, alternate, positive_int, protocol, synchronize

from latentatlas.latent.codes import decode_codes, encode_images
from latentatlas.metrics.classifier import SmallCNN
from latentatlas.metrics.features import extract_features

ROOT = Path(__file__).resolve().parents[1]


def images_per_second(evaluate, n: int):
    """() -> images/s of one ``evaluate()`` over ``n`` images."""
    def run() -> float:
        synchronize()
        start = time.perf_counter()
        evaluate()
        synchronize()
        return n / (time.perf_counter() - start)
    return run


@torch.no_grad()
def plain_loop(fn, rows: torch.Tensor, batch: int, device: str) -> list[torch.Tensor]:
    """The loop a user writes: each batch to the device, ``fn`` on it (-> a tuple of tensors), each output back
    with ``.cpu()``, then ``torch.cat`` of each."""
    parts = [tuple(t.cpu() for t in fn(rows[s:s + batch].to(device))) for s in range(0, rows.shape[0], batch)]
    return [torch.cat(column) for column in zip(*parts)]


def posterior(vae, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    post = vae.encode(x.float().div(255))
    return post.mean, post.logvar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=positive_int, default=60000, help="images (default 60000)")
    parser.add_argument("--batch", type=positive_int, default=512, help="rows a batch (default 512)")
    add_device(parser)
    add_repeats(parser, default=7)
    args = parser.parse_args()
    protocol("batched evaluation: latentatlas (tensors.map_rows) vs a loop of .to(device) and .cpu() a batch",
             {"images": f"{args.n} random uint8 1x28x28", "batch": args.batch, "device": args.device,
              "repeats": args.repeats}, ("torch",))
    device, batch, n = args.device, args.batch, args.n
    images = synthetic_images(n, (1, 28, 28)).images
    vae = config_model(ROOT / "configs" / "mnist-vae.yaml", (1, 28, 28))[0].to(device).eval()
    torch.manual_seed(0)
    classifier = SmallCNN(1, 10).to(device).eval()
    codes = encode_images(vae, images[:batch], batch_size=batch, device=device)[0]
    codes = codes.repeat((n + batch - 1) // batch, 1)[:n]

    print(f"\nencode {n} images with the default MNIST VAE (posterior means and log-variances); images/s")
    alternate({"plain loop": images_per_second(lambda: plain_loop(lambda x: posterior(vae, x), images, batch, device),
                                               n),
               "encode_images": images_per_second(lambda: encode_images(vae, images, batch_size=batch,
                                                                        device=device), n)},
              args.repeats, baseline="plain loop", unit="images/s", rate=True, digits=0)
    print(f"\ndecode {n} codes with the default MNIST VAE; images/s")
    alternate({"plain loop": images_per_second(lambda: plain_loop(lambda z: (vae.decode(z),), codes, batch, device), n),
               "decode_codes": images_per_second(lambda: decode_codes(vae, codes, batch_size=batch,
                                                                      device=device), n)},
              args.repeats, baseline="plain loop", unit="images/s", rate=True, digits=0)
    print(f"\nfeatures of {n} images with the MNIST classifier network (float64 out); images/s")
    alternate({"plain loop": images_per_second(lambda: plain_loop(
                   lambda x: (classifier(x.float().div(255)).double(),), images, batch, device), n),
               "extract_features": images_per_second(lambda: extract_features(
                   classifier, images, batch_size=batch, device=device), n)},
              args.repeats, baseline="plain loop", unit="images/s", rate=True, digits=0)


if __name__ == "__main__":
    main()
