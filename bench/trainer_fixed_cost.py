"""What ``train()`` costs once per run and per epoch, apart from its steps: the set-up (data to the device,
optimizers, the run folder) and the epoch-end checkpoint (last.pt, and best.pt when the epoch improves).

Times ``train()`` of a config's model at ``max_steps`` 1 and ``1 + --steps`` (one epoch each, no validation
rows), alternating ``--repeats`` times (timing.alternate); the fixed cost is T(1) - (T(1 + steps) - T(1)) /
steps, from the medians.  On a GPU, where a step takes milliseconds, this is what separates ``train()`` from a
plain loop in a short run (bench/face_throughput.py); on the CPU it is small beside the steps.  Then the time
of one checkpoint write of that model with its Adam state, and what the epoch-end writes cost a run of
``--epochs`` short epochs of ``--epoch-steps`` steps when last.pt is written after every epoch
(``train.checkpoint_overhead`` none) and at the default cadence, against the plain loop of
budget.plain_vae_loop (no checkpoints) on the same images and steps.
    python bench/trainer_fixed_cost.py [--config configs/celeba64-betavae.yaml] [--device cuda] [--repeats 5]
        [--epochs 8] [--epoch-steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from budget import checkpoint_payload, config_model, plain_vae_loop, synthetic_images, warm_up
from timing import Timed, add_device, add_repeats, alternate, positive_int, protocol

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "celeba64-betavae.yaml"))
    parser.add_argument("--shape", default="3,64,64", help="C,H,W of the config's images (3,64,64: faces)")
    parser.add_argument("--steps", type=positive_int, default=40, help="steps of the longer run, beyond the first")
    parser.add_argument("--epochs", type=positive_int, default=8, help="epochs of the write comparison")
    parser.add_argument("--epoch-steps", type=positive_int, default=10, help="steps an epoch in that comparison")
    add_repeats(parser)
    add_device(parser)
    args = parser.parse_args()
    from latentatlas.config import TrainConfig
    from latentatlas.fileio import file_identity
    from latentatlas.training import train

    shape = tuple(int(v) for v in args.shape.split(","))
    model, cfg = config_model(args.config, shape)
    batch = cfg.train.batch_size
    data = synthetic_images(max(batch * (args.steps + 1), 2000), shape)

    def run(steps: int, epochs: int = 1, data=data, overhead=TrainConfig.checkpoint_overhead) -> Timed:
        train_cfg = TrainConfig(epochs=epochs, batch_size=batch, lr=cfg.train.lr, max_steps=steps, progress=False,
                                patience=None, device=args.device, precision="fp32", checkpoint_overhead=overhead)

        def once() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                train(config_model(args.config, shape)[0], data, train_cfg, tmp, seed=0)
                assert file_identity(Path(tmp) / "checkpoints" / "best.pt") is not None
        return Timed(once)

    protocol("train()'s fixed cost: set-up and the epoch-end checkpoint, apart from the steps",
             {"config": Path(args.config).name, "batch": batch, "data": f"{len(data)} random images",
              "runs": f"max_steps 1 and {1 + args.steps}, one epoch each", "device": args.device,
              "precision": "fp32"}, ("torch",))
    warm_up()
    run(2)()
    short, long = "train(), 1 step", f"train(), {1 + args.steps} steps"
    medians = alternate({short: run(1), long: run(1 + args.steps)}, args.repeats)
    step = (medians[long] - medians[short]) / args.steps
    print(f"per step {1000 * step:.1f} ms; fixed cost (set-up + epoch-end checkpoint) {medians[short] - step:.3f} s")

    from latentatlas.training import checkpoint as ckpt_io
    payload, _ = checkpoint_payload(model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "last.pt"
        times = [Timed(lambda: ckpt_io.save_checkpoint(path, payload))() for _ in range(args.repeats)]
        print(f"one checkpoint write ({sum(p.numel() for p in model.parameters()):,} parameters and their Adam "
              f"state, {path.stat().st_size / 2**20:.1f} MiB, fsynced): median {1000 * statistics.median(times):.0f} "
              f"ms (min {1000 * min(times):.0f}, max {1000 * max(times):.0f})")

    epochs, steps = args.epochs, args.epochs * args.epoch_steps
    short_epochs = synthetic_images(batch * args.epoch_steps, shape)
    print(f"\nthe epoch-end writes of {epochs} epochs of {args.epoch_steps} steps:")
    every, cadence = "train(), last.pt every epoch", f"train(), checkpoint_overhead {TrainConfig.checkpoint_overhead}"
    plain = "plain loop, no checkpoints"

    def plain_loop() -> None:
        fresh = config_model(args.config, shape)[0]
        plain_vae_loop(fresh.encoder, fresh.decoder, short_epochs.images, batch=batch, lr=cfg.train.lr, steps=steps,
                       beta=fresh.config.kl_weight, likelihood=fresh.config.likelihood, device=args.device)
    medians = alternate({every: run(steps, epochs, short_epochs, None), cadence: run(steps, epochs, short_epochs),
                         plain: Timed(plain_loop)}, args.repeats, baseline=plain)
    for name in (every, cadence):
        print(f"{name}: {100 * (medians[name] / medians[plain] - 1):+.1f} % over the plain loop")


if __name__ == "__main__":
    main()
