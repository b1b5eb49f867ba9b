"""One Adam step on the parameters of the shipped networks: torch's default implementation (what a plain loop
writes, ``torch.optim.Adam(params)``) against ``latentatlas.optim.adam`` (torch's fused implementation where
the device has one), which the trainer and the learned samplers use.  Each run times ``--steps`` steps after
3 warm-up steps, on gradients drawn once; the two alternate ``--repeats`` times (median, min, max).  Then, on
the default MNIST VAE, ``train()``'s steps with each (the rest of the step unchanged), as images/s.
    python bench/adam_step.py [--device cuda] [--repeats 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from budget import config_model, synthetic_images, trainer_images_per_second, warm_up
from timing import add_device, add_repeats, alternate, positive_int, protocol, synchronize

from latentatlas import optim
from latentatlas.latent.samplers import build_sampler

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {"default MNIST VAE (mnist-vae.yaml)": ("mnist-vae", (1, 28, 28)),
            "faces beta-VAE (celeba64-betavae.yaml)": ("celeba64-betavae", (3, 64, 64)),
            "DCGAN generator + discriminator (mnist-dcgan.yaml)": ("mnist-dcgan", (1, 28, 28))}


def parameters(name: str, device: str) -> list[torch.Tensor]:
    """The trainable parameters of network ``name`` (NETWORKS, or the ddpm sampler's network) on ``device``."""
    if name == "ddpm sampler network (64-d codes)":
        return list(build_sampler("ddpm").build_network(64).to(device).parameters())
    config, shape = NETWORKS[name]
    model = config_model(ROOT / "configs" / f"{config}.yaml", shape, n_classes=10)[0].to(device)
    return [p for p in model.parameters() if p.requires_grad]


def step_ms(params: list[torch.Tensor], make, steps: int):
    """() -> milliseconds a step of the optimizer ``make(params)`` on copies of ``params``."""
    def run() -> float:
        copies = [p.detach().clone().requires_grad_() for p in params]
        g = torch.Generator().manual_seed(0)
        for p in copies:
            p.grad = torch.randn(p.shape, generator=g).to(p.device)
        opt = make(copies)
        for _ in range(3):
            opt.step()
        synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        synchronize()
        return 1e3 * (time.perf_counter() - start) / steps
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=positive_int, default=200)
    add_device(parser)
    add_repeats(parser, default=7)
    args = parser.parse_args()
    protocol("one Adam step: torch.optim.Adam (default implementation) vs latentatlas.optim.adam (fused)",
             {"steps per run": args.steps, "device": args.device, "repeats": args.repeats}, ("torch",))
    warm_up()
    for name in [*NETWORKS, "ddpm sampler network (64-d codes)"]:
        params = parameters(name, args.device)
        print(f"\n{name}: {sum(p.numel() for p in params):,} parameters in {len(params)} tensors; ms a step")
        alternate({"torch.optim.Adam": step_ms(params, lambda ps: torch.optim.Adam(ps, lr=1e-3), args.steps),
                   "latentatlas.optim.adam": step_ms(params, lambda ps: optim.adam(ps, lr=1e-3), args.steps)},
                  args.repeats, baseline="torch.optim.Adam", unit="ms")
    print("\ndefault MNIST VAE, train() on 12,800 random 28x28 images in batches of 128, 60 steps; images/s")
    data = synthetic_images(12800, (1, 28, 28))

    def trained(fused: bool):
        def run() -> float:
            model, cfg = config_model(ROOT / "configs" / "mnist-vae.yaml", (1, 28, 28))
            fuse = optim.FUSED_DEVICES
            optim.FUSED_DEVICES = fuse if fused else ()
            try:
                return trainer_images_per_second(model, data, lr=cfg.train.lr, steps=60, batch=128,
                                                 device=args.device)
            finally:
                optim.FUSED_DEVICES = fuse
        return run
    alternate({"train(), torch's default Adam": trained(False), "train(), fused Adam": trained(True)},
              args.repeats, baseline="train(), torch's default Adam", unit="images/s", rate=True, digits=0)


if __name__ == "__main__":
    main()
