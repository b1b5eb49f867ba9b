"""Where ``train()``'s time goes beside a plain loop: its epochs' batches, its epoch ends and, within those,
its checkpoint writes, each summed over a run (the trainer's methods wrapped with clocks that wait for CUDA).

Trains the model of a config (default: the faces beta-VAE, configs/celeba64-betavae.yaml) on 8,000 random
64x64 images (speed does not depend on the pixels) in batches of 64 for ``--steps`` steps (several epochs of
125 steps), then the same network in budget.plain_vae_loop for as many steps, ``--repeats`` times in turn.
The wrapping adds a CUDA wait at each method's ends, a few per epoch.  Checkpoint writes run on the trainer's
background thread, so "writing" (the write's own time there) overlaps the batches and is not a part of the
sum; "waiting for a write" is the time an epoch end (or the run's end) waited for the write before it.
    python bench/trainer_time_split.py [--device cuda] [--steps 1000] [--repeats 2] [--precision fp32]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from latentatlas.config import PRECISIONS
from budget import config_model, plain_vae_loop, synthetic_images, warm_up
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
    add_device(parser)
    add_repeats(parser)
    args = parser.parse_args()
    from latentatlas.config import TrainConfig
    from latentatlas.training import checkpoint, train
    from latentatlas.training import trainer as trainer_module

    totals: collections.Counter = collections.Counter()
    trainer = trainer_module._Trainer
    for name, label in [("train_epoch", "epochs' batches"), ("end_epoch", "epoch ends"),
                        ("wait", "waiting for a write")]:
        clocked(totals, checkpoint.BackgroundWrites if name == "wait" else trainer, name, label)
    clocked(totals, trainer, "_write", "writing (background)", cuda_wait=False)
    data = synthetic_images(8000, (3, 64, 64))
    protocol("train()'s time, split, beside a plain loop", {"config": Path(args.config).name, "batch": 64,
             "data": "8000 random 64x64 images", "steps": args.steps, "device": args.device,
             "precision": args.precision}, ("torch",))
    warm_up()
    for repeat in range(args.repeats):
        totals.clear()
        model, cfg = config_model(args.config, (3, 64, 64))
        train_cfg = TrainConfig(epochs=-(-args.steps * 64 // 8000), batch_size=64, lr=cfg.train.lr,
                                max_steps=args.steps, progress=False, patience=None, device=args.device,
                                precision=args.precision)
        with tempfile.TemporaryDirectory() as tmp:
            synchronize()
            start = time.perf_counter()
            train(model, data, train_cfg, tmp, seed=0)
            synchronize()
            whole = time.perf_counter() - start
        model, cfg = config_model(args.config, (3, 64, 64))
        plain = plain_vae_loop(model.encoder, model.decoder, data.images, batch=64, lr=cfg.train.lr,
                               steps=args.steps, beta=model.config.kl_weight, likelihood=model.config.likelihood,
                               precision=args.precision, device=args.device)
        print(f"run {repeat + 1}/{args.repeats}: train() {whole:.3f} s, plain loop {plain:.3f} s "
              f"({100 * (whole / plain - 1):+.1f} %); " + ", ".join(f"{k} {v:.3f} s" for k, v in totals.items()))


if __name__ == "__main__":
    main()
