"""Where ``train()``'s time goes beside a plain loop: its epochs' batches, its epoch ends and, within those,
its checkpoint writes, each summed over a run (the trainer's methods wrapped with clocks that wait for CUDA).

Trains the model of a config (default: the faces beta-VAE, configs/celeba64-betavae.yaml) on 8,000 random
64x64 images (speed does not depend on the pixels) in batches of 64 for ``--steps`` steps (several epochs of
125 steps), then the same network in budget.plain_vae_loop for as many steps, ``--repeats`` times in turn.
The wrapping adds a CUDA wait at each method's ends, a few per epoch.  "checkpoint writes" is the part of the
epoch ends (and of the run's end) that wrote last.pt and best.pt, as often as ``train.checkpoint_overhead``
lets them (``--overhead none``: after every epoch).
Then the parts of one such write, timed one by one.
    python bench/trainer_time_split.py [--device cuda] [--steps 1000] [--repeats 2] [--precision fp32]
        [--overhead none]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

import torch
from latentatlas.config import PRECISIONS, TrainConfig
from budget import (checkpoint_payload, config_model, overhead_setting, plain_vae_loop, synthetic_images,
                    trainer_images_per_second, warm_up)
from timing import add_device, add_repeats, positive_int, protocol, synchronize

ROOT = Path(__file__).resolve().parents[1]


def clocked(totals: collections.Counter, owner, name: str, label: str, *, cuda_wait: bool = True):
    """Replace ``owner.name`` by a wrapper that adds its wall-clock seconds to totals[label] (with
    ``cuda_wait``, queued CUDA work waited for at both ends)."""
    inner = getattr(owner, name)
    wait = synchronize if cuda_wait else (lambda: None)

    def wrapper(*args, **kwargs):
        wait()
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            wait()
            totals[label] += time.perf_counter() - start
    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "celeba64-betavae.yaml"))
    parser.add_argument("--steps", type=positive_int, default=1000)
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="of both loops (default fp32; train.precision's auto would pick bf16 where it pays)")
    parser.add_argument("--overhead", type=overhead_setting, default=TrainConfig.checkpoint_overhead,
                        help="train.checkpoint_overhead (default: its default; none: last.pt after every epoch)")
    add_device(parser)
    add_repeats(parser)
    args = parser.parse_args()
    from latentatlas.training import checkpoint
    from latentatlas.training import trainer as trainer_module

    totals: collections.Counter = collections.Counter()
    trainer = trainer_module._Trainer
    for name, label in [("train_epoch", "epochs' batches"), ("end_epoch", "epoch ends")]:
        clocked(totals, trainer, name, label)
    clocked(totals, checkpoint.TrainingCheckpoints, "write_unwritten", "checkpoint writes", cuda_wait=False)
    data = synthetic_images(8000, (3, 64, 64))
    protocol("train()'s time, split, beside a plain loop", {"config": Path(args.config).name, "batch": 64,
             "data": "8000 random 64x64 images", "steps": args.steps, "device": args.device,
             "precision": args.precision, "train.checkpoint_overhead": args.overhead}, ("torch",))
    warm_up()
    for repeat in range(args.repeats):
        totals.clear()
        model, cfg = config_model(args.config, (3, 64, 64))
        synchronize()
        whole = args.steps * 64 / trainer_images_per_second(model, data, lr=cfg.train.lr, steps=args.steps, batch=64,
                                                            precision=args.precision, device=args.device,
                                                            checkpoint_overhead=args.overhead)
        model, cfg = config_model(args.config, (3, 64, 64))
        plain = plain_vae_loop(model.encoder, model.decoder, data.images, batch=64, lr=cfg.train.lr,
                               steps=args.steps, beta=model.config.kl_weight, likelihood=model.config.likelihood,
                               precision=args.precision, device=args.device)
        print(f"run {repeat + 1}/{args.repeats}: train() {whole:.3f} s, plain loop {plain:.3f} s "
              f"({100 * (whole / plain - 1):+.1f} %); " + ", ".join(f"{k} {v:.3f} s" for k, v in totals.items()))
    write_parts(model, args.device, args.repeats)


def write_parts(model, device: str, repeats: int) -> None:
    """The parts of one epoch-end checkpoint write of ``model`` (on ``device``) with an Adam state, each the
    median of ``repeats`` timings: the copy to the CPU, the finite check, the content hash, serialising,
    writing with fsync (what the trainer's save and its background write do, in their order)."""
    import io
    import os
    import statistics

    from latentatlas.fileio import content_hash
    from latentatlas.training.checkpoint import model_payload, snapshot
    from latentatlas.validate import check_finite

    _, opt = checkpoint_payload(model.to(device))
    state: dict = {}

    def copy() -> None:
        state["payload"] = {**model_payload(model), **snapshot({"optimizers": {"main": opt.state_dict()}})}

    def serialise() -> None:
        buffer = io.BytesIO()
        torch.save(state["payload"], buffer)
        state["bytes"] = buffer.getvalue()

    def write(folder: str) -> None:
        with open(os.path.join(folder, "last.pt"), "wb") as f:
            f.write(state["bytes"])
            f.flush()
            os.fsync(f.fileno())

    with tempfile.TemporaryDirectory() as folder:
        parts = {"copy to the CPU": copy, "finite check": lambda: check_finite("m", model.state_dict()),
                 "content hash": lambda: content_hash(state["payload"]), "serialise": serialise,
                 "write and fsync": lambda: write(folder)}
        times = {name: [] for name in parts}
        for _ in range(repeats):
            for name, part in parts.items():
                synchronize()
                start = time.perf_counter()
                part()
                synchronize()
                times[name].append(time.perf_counter() - start)
    print(f"one checkpoint write ({len(state['bytes']) / 2**20:.1f} MiB), median of {repeats}: "
          + ", ".join(f"{name} {1000 * statistics.median(t):.1f} ms" for name, t in times.items()))


if __name__ == "__main__":
    main()
