"""What ``train()`` adds to each step beside a plain loop, where the arithmetic is negligible: the host's time
(Python and the dispatch of each operation) and the operations themselves, which on a GPU are kernel
launches, so that this is what a GPU step whose networks leave the device idle pays.

Time: a VAE with an MLP of width 8 on 4x4 images (2-d codes, batch 8, one torch thread), ``train()`` against
budget.plain_vae_loop at 200 and 2,200 steps, alternating ``--repeats`` times; the per-step time is the
difference of the medians over 2,000.  Operations: the top-level ATen operations per step that the torch
profiler counts in ``train()`` and in the plain loop (the difference between runs of 10 and 20 steps), for
that VAE and for the DCGAN of configs/mnist-dcgan.yaml against bench/gan_throughput.py's loop, by name where
they differ.
    python bench/trainer_step_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import torch
from budget import config_model, plain_vae_loop, synthetic_images, trainer_images_per_second, warm_up
from timing import add_repeats, alternate, protocol

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.architecture=mlp", "model.width=8", "model.latent_dim=2", "model.hidden_layers=1"]


def tiny_vae_runs(data):
    """(train() seconds, plain loop seconds) functions of a step count, for the tiny VAE on ``data``."""
    def build():
        return config_model(ROOT / "configs" / "mnist-vae.yaml", (1, 4, 4), overrides=TINY)[0]

    def ours(steps: int) -> float:
        start = time.perf_counter()
        trainer_images_per_second(build(), data, lr=1e-3, steps=steps, batch=8, precision="fp32")
        return time.perf_counter() - start

    def plain(steps: int) -> float:
        model = build()
        start = time.perf_counter()
        plain_vae_loop(model.encoder, model.decoder, data.images, batch=8, lr=1e-3, steps=steps)
        return time.perf_counter() - start
    return ours, plain


def operations(run) -> collections.Counter:
    """Top-level ATen operations per step of ``run(steps)``: the counts of 20 steps minus those of 10, over 10."""
    from torch.profiler import ProfilerActivity, profile

    def count(steps: int) -> collections.Counter:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(steps)
        return collections.Counter(e.name for e in prof.events() if e.name.startswith("aten::") and (
            e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    low, high = count(10), count(20)
    return collections.Counter({k: (high[k] - low[k]) / 10 for k in set(low) | set(high)})


def print_operations(name: str, ours: collections.Counter, plain: collections.Counter) -> None:
    differ = sorted((k for k in set(ours) | set(plain) if ours[k] != plain[k]), key=lambda k: plain[k] - ours[k])
    print(f"{name}: {sum(ours.values()):.0f} operations a step in train(), {sum(plain.values()):.0f} in the plain "
          "loop; where they differ: " + ", ".join(f"{k[6:]} {ours[k]:g}/{plain[k]:g}" for k in differ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_repeats(parser)
    args = parser.parse_args()
    import gan_throughput

    torch.set_num_threads(1)
    data = synthetic_images(64000, (1, 4, 4))
    protocol("train()'s cost a step where the arithmetic is negligible", {
        "network": "mnist-vae.yaml with " + ", ".join(TINY), "images": "4x4, batch 8", "steps": "200 and 2,200",
        "threads": 1}, ("torch",))
    warm_up()
    ours, plain = tiny_vae_runs(data)
    ours(50), plain(50)
    medians = alternate({"train(), 200 steps": lambda: ours(200), "train(), 2,200 steps": lambda: ours(2200),
                         "plain loop, 200 steps": lambda: plain(200), "plain loop, 2,200 steps": lambda: plain(2200)},
                        args.repeats)
    per_step = {who: (medians[f"{who}, 2,200 steps"] - medians[f"{who}, 200 steps"]) / 2000
                for who in ("train()", "plain loop")}
    print(f"per step: train() {1e6 * per_step['train()']:.0f} us, plain loop {1e6 * per_step['plain loop']:.0f} us "
          f"(+{1e6 * (per_step['train()'] - per_step['plain loop']):.0f} us)")
    print_operations("tiny VAE", operations(ours), operations(plain))
    gan_data = synthetic_images(64 * 25, (1, 28, 28))
    print_operations("DCGAN", operations(lambda steps: gan_throughput.ours(gan_data, steps, "cpu")),
                     operations(lambda steps: gan_throughput.plain(gan_data.images, steps, "cpu")))


if __name__ == "__main__":
    main()
