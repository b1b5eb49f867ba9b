"""What ``train()`` costs once per run and per epoch, apart from its steps: the set-up (data to the device,
optimizers, the run folder) and the epoch-end checkpoint (last.pt, and best.pt when the epoch improves).

Times ``train()`` of a config's model at ``max_steps`` 1 and ``1 + --steps`` (one epoch each, no validation
rows), alternating ``--repeats`` times (timing.alternate); the fixed cost is T(1) - (T(1 + steps) - T(1)) /
steps, from the medians.  On a GPU, where a step takes milliseconds, this is what separates ``train()`` from a
plain loop in a short run (bench/face_throughput.py); on the CPU it is small beside the steps.  Then the time
of one checkpoint write of that model with its Adam state, and what the epoch-end writes cost a run of
``--epochs`` short epochs of ``--epoch-steps`` steps when they are written on the trainer's background thread
(the default) and when written in line (``BackgroundWrites.submit`` replaced by a plain call, as before).
    python bench/trainer_fixed_cost.py [--config configs/celeba64-betavae.yaml] [--device cuda] [--repeats 5]
        [--epochs 8] [--epoch-steps 10]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from budget import checkpoint_payload, config_model, synthetic_images, warm_up
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

    def run(steps: int, epochs: int = 1, data=data, inline: bool = False) -> Timed:
        train_cfg = TrainConfig(epochs=epochs, batch_size=batch, max_steps=steps, progress=False, patience=None,
                                device=args.device)

        def once() -> None:
            with tempfile.TemporaryDirectory() as tmp, writes_in_line(inline):
                train(config_model(args.config, shape)[0], data, train_cfg, tmp, seed=0)
                assert file_identity(Path(tmp) / "checkpoints" / "best.pt") is not None
        return Timed(once)

    protocol("train()'s fixed cost: set-up and the epoch-end checkpoint, apart from the steps",
             {"config": Path(args.config).name, "batch": batch, "data": f"{len(data)} random images",
              "runs": f"max_steps 1 and {1 + args.steps}, one epoch each", "device": args.device}, ("torch",))
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
    background, in_line = "train(), writes in the background", "train(), writes in line"
    medians = alternate({background: run(steps, epochs, short_epochs), in_line: run(steps, epochs, short_epochs, True)},
                        args.repeats, baseline=in_line)
    print(f"saved by the background writes: {1000 * (medians[in_line] - medians[background]) / epochs:.0f} ms an epoch "
          f"({100 * (1 - medians[background] / medians[in_line]):.1f} % of the run)")


@contextlib.contextmanager
def writes_in_line(inline: bool):
    """Within it, with ``inline``, the trainer writes each checkpoint before the next epoch starts."""
    from latentatlas.training.checkpoint import BackgroundWrites

    submit = BackgroundWrites.submit
    if inline:
        BackgroundWrites.submit = lambda self, write: write()
    try:
        yield
    finally:
        BackgroundWrites.submit = submit


if __name__ == "__main__":
    main()
