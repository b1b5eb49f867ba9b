"""What the training benchmarks share: a config file's model with seeded weights, the command-line arguments
of those that train on full MNIST within a wall-clock budget (gan_mnist.py, families_mnist.py), their table
printer, the alternating comparison of
the trainer with a plain loop (gan_throughput.py, face_throughput.py, mnist_throughput.py; its timing is
timing.alternate) and the plain PyTorch (V)AE loop the last two time."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from timing import alternate

ROOT = Path(__file__).resolve().parents[1]


def config_model(config: str | Path, shape: tuple[int, ...], *, n_classes: int | None = None, seed: int = 0,
                 overrides: tuple[str, ...] | list[str] = ()):
    """(model, run config) of the YAML run ``config`` with ``overrides`` (KEY=VALUE), for images of ``shape``
    (C, H, W) and ``n_classes`` labels, its weights drawn with ``seed`` (torch's global generator)."""
    import torch

    from latentatlas import config as config_mod
    from latentatlas.models import build_model

    cfg = config_mod.load(config, list(overrides))
    torch.manual_seed(seed)
    return build_model(cfg.model, shape, n_classes), cfg


def budget_arguments(doc: str, *, only: str, runs_dir: str) -> argparse.Namespace:
    """--mnist (the IDX folder), --minutes (training budget per model), --only (comma-separated names),
    --runs-dir (where the run folders go) and --json (also write the table there)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--only", default=only)
    parser.add_argument("--runs-dir", default=runs_dir)
    parser.add_argument("--json", default=None, help="also write the table to this file")
    return parser.parse_args()


SCORE_COLUMNS = [("FD", "frechet", ">8.2f"), ("prec", "precision", ">7.3f"), ("recall", "recall", ">7.3f"),
                 ("classes", "classes_covered", ">8")]   # the sample-quality columns of both tables


def print_table(rows: list[dict], columns: list[tuple[str, str, str]], *, header: bool = True) -> None:
    """One line per row, after a line of headers unless ``header`` is False (a table printed row by row):
    ``columns`` are (header, key, format spec such as '<22' or '>8.2f'); a missing value prints as '-'."""
    def cell(value, spec: str) -> str:
        width = re.match(r"[<>]?\d+", spec).group(0)
        return f"{'-':{width}}" if value is None else f"{value:{spec}}"

    if header:
        print("".join(cell(title, re.match(r"[<>]?\d+", spec).group(0)) for title, _, spec in columns))
    for row in rows:
        print("".join(cell(row.get(key), spec) for _, key, spec in columns))


def trainer_images_per_second(model, data, *, lr: float, steps: int, batch: int, precision: str = "fp32",
                              device: str = "cpu", **settings) -> float:
    """images/s of ``latentatlas.training.train`` for ``steps`` batches of ``batch`` (set-up and checkpoints
    included; as many epochs as those batches need, so more than one checkpoint when ``steps`` outruns an
    epoch) at ``train.precision`` on ``device``, into a temporary run folder; ``settings``: other train
    settings (e.g. ``checkpoint_overhead``)."""
    import tempfile

    from latentatlas.config import TrainConfig
    from latentatlas.training import train

    epochs = -(-steps * batch // len(data.part("train")))   # enough epochs for ``steps`` batches
    train_cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=lr, max_steps=steps, progress=False,
                            patience=None, device=device, precision=precision, **settings)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(model, data, train_cfg, tmp, seed=0)
        return steps * batch / (time.perf_counter() - start)


def overhead_setting(text: str) -> float | None:
    """``--overhead``: a ``train.checkpoint_overhead`` (a share in (0, 1]) or ``none`` (every epoch)."""
    if text.lower() == "none":
        return None
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1] or none, got {text!r}")
    return value


def checkpoint_payload(model):
    """(payload, optimizer): ``model``'s checkpoint payload with the state of an Adam that took one step, the
    size of an epoch-end checkpoint (model and optimizer part) for timing a write; the payload's optimizer
    state is the optimizer's own (copy it to freeze it)."""
    import torch

    from latentatlas.training.checkpoint import model_payload

    opt = torch.optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {**model_payload(model), "optimizers": {"main": opt.state_dict()}}, opt


def trainer_against_plain(ours, plain, repeats: int) -> dict[str, float]:
    """Alternate ``ours()`` and ``plain()`` (each returns images/s) ``repeats`` times through
    timing.alternate (every run, medians with min and max, load average), then the framework's cost;
    returns the medians."""
    med = alternate({"latentatlas trainer": ours, "plain PyTorch loop": plain}, repeats,
                    baseline="plain PyTorch loop", unit="images/s", rate=True, digits=0)
    print(f"framework cost: {100 * (1 - med['latentatlas trainer'] / med['plain PyTorch loop']):.1f} %")
    return med


def plain_vae_loop(encoder, decoder, images, *, batch: int, lr: float, epochs: int | None = None,
                   steps: int | None = None, variational: bool = True, beta: float = 1.0,
                   likelihood: str = "bernoulli", seed: int = 0, every: int | None = None, after=None,
                   precision: str = "fp32", device: str = "cpu") -> float:
    """Train ``encoder`` (images -> (B, 2d) mean and log-variance, or (B, d) codes when not ``variational``)
    and ``decoder`` ((B, d) -> logits) on uint8 ``images`` (N, C, H, W) as a hand-written loop would: Adam
    over both, each epoch a fresh shuffle in batches of ``batch`` (the last one smaller), the reparameterised
    sample, the per-image reconstruction (BCE on the logits, or the squared error of their sigmoid for
    'gaussian') plus ``beta`` times the KL, batch mean.  Stops after ``epochs`` epochs or ``steps`` batches,
    whichever comes first.  ``precision`` bf16 / fp16: the two networks run under ``torch.autocast`` to that
    type and their outputs are taken to float32 for the loss (the usual mixed-precision loop; fp16 without a
    gradient scaler, so use it for timing only).  On ``device`` (images, networks and noise moved there; the
    clock waits for CUDA).  ``after(steps_done, seconds)`` runs untimed every ``every`` batches and at the
    end, with the training seconds so far (e.g. to score the networks).  Returns the training seconds."""
    import itertools

    import torch
    import torch.nn.functional as F

    from latentatlas.training.precision import DTYPES

    if epochs is None and steps is None:
        raise ValueError("plain_vae_loop: expected epochs or steps, got neither")
    device = torch.device(device)
    encoder.to(device), decoder.to(device)
    images = images.to(device)
    opt = torch.optim.Adam(list(encoder.parameters()) + list(decoder.parameters()), lr=lr)
    g = torch.Generator().manual_seed(seed)
    dtype = DTYPES[precision]

    def run(network, inputs):
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return network(inputs).float()

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    seconds, step, reported = 0.0, 0, 0
    encoder.train(), decoder.train()
    start = clock()
    for _ in itertools.count() if epochs is None else range(epochs):
        order = torch.randperm(images.shape[0], generator=g).to(device)
        for first in range(0, images.shape[0], batch):
            if steps is not None and step >= steps:
                break
            x = images[order[first:first + batch]].float().div_(255)
            h = run(encoder, x)
            if variational:
                mean, logvar = h.chunk(2, dim=1)
                z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g).to(device)
                kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)
            else:
                z, kl = h, torch.zeros((), device=device)
            logits = run(decoder, z)
            if likelihood == "gaussian":
                recon = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
            else:
                recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
            loss = (recon + beta * kl).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if after is not None and every and step % every == 0:
                seconds += clock() - start
                after(step, seconds)
                reported = step
                encoder.train(), decoder.train()
                start = clock()
        if steps is not None and step >= steps:
            break
    seconds += clock() - start
    if after is not None and reported != step:
        after(step, seconds)
    return seconds


def train_only(data):
    """``data`` (an ImageDataset) with every row in the training split, so that neither loop validates."""
    import torch

    data.split = torch.zeros(len(data), dtype=torch.int8)
    return data


def synthetic_images(n: int, shape: tuple[int, int, int], seed: int = 0):
    """An ImageDataset of ``n`` uniform random uint8 images (n, C, H, W), every row in the training split: a
    stand-in for timing where the data folder is absent (a lent GPU machine); speed does not depend on
    the pixels."""
    import torch

    from latentatlas.data.base import ImageDataset

    images = torch.randint(256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return train_only(ImageDataset("synthetic", images))


def warm_up() -> None:
    """One Adam step on a tiny module, so that lazy imports (torch._dynamo, on an optimizer's first use)
    are paid before the first timed run, by neither loop."""
    import torch

    layer = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 2)).sum().backward()
    opt.step()
