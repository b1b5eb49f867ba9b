"""The fitting loops of the learned samplers and of the inversion encoder wait for the device a fixed number of
times, not once an iteration (tests/gpu_waits.py says what waits): their loss curves are read at the end, and
their batches are drawn on the CPU and copied through pinned memory.  A full Gaussian mixture's draw waits a
fixed number of times, not once a component, and a nearest-neighbour path's draw not once a block of anchors.
On a GPU, CUDA's sync detector counts the waits too (copies from ordinary memory included, which the CPU cannot
see)."""

from __future__ import annotations

import re

import pytest
import torch

from latentatlas.latent.inversion import Inverter
from latentatlas.latent.samplers import build_sampler, convex
from latentatlas.latent.samplers.ddpm import alpha_bar_on, cosine_alpha_bar
from latentatlas.models import build_model, model_config
from tests.gpu_waits import count_waits
from tests.latent.samplers.small import SMALL

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["ddpm", "two-stage", "pixelcnn"])
def test_a_learned_samplers_fit_waits_as_often_for_20_iterations_as_for_40(name, device):
    g = torch.Generator().manual_seed(0)
    if name == "pixelcnn":
        codes = torch.randint(4, (200, 3, 3), generator=g)
    else:
        codes = torch.randn(200, 3, generator=g) + 4.0 * (torch.arange(200) % 2)[:, None]
    codes = codes.to(device)

    def fit(iters: int):
        sampler = build_sampler(re.sub(r"iters=\d+", f"iters={iters}", SMALL[name]))
        alpha_bar_on.cache_clear()   # each fit copies the diffusion schedule once
        return lambda: sampler.fit(codes, generator=torch.Generator().manual_seed(1))
    assert count_waits(fit(20), device) == count_waits(fit(40), device)


@pytest.mark.parametrize("device", DEVICES)
def test_the_inversion_encoders_fit_waits_as_often_for_20_steps_as_for_40(device):
    model = build_model(model_config("cgan", architecture="mlp", latent_dim=3, width=16), (1, 8, 8), n_classes=3)
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(64, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(64) % 3
    model.to(device)

    def fit(steps: int):
        inverter = Inverter(model, refine_steps=0)
        return lambda: inverter.fit(model, images, labels, steps=steps, batch_size=16, generator=g, device=device)
    assert count_waits(fit(20), device) == count_waits(fit(40), device)


@pytest.mark.parametrize("device", DEVICES)
def test_a_full_gaussian_mixtures_draw_waits_as_often_for_12_components_as_for_3(device):
    g = torch.Generator().manual_seed(0)

    def draw(k: int):
        x = (torch.randn(40 * k, 2, generator=g) + 8.0 * torch.randn(k, 2, generator=g).repeat(40, 1)).to(device)
        sampler = build_sampler(f"gmm:k={k},covariance=full").fit(x, generator=torch.Generator().manual_seed(1))
        return lambda: sampler.sample(500, generator=torch.Generator().manual_seed(2))
    assert count_waits(draw(3), device) == count_waits(draw(12), device)


@pytest.mark.parametrize("device", DEVICES)
def test_a_nearest_neighbour_paths_draw_waits_as_often_for_one_block_of_anchors_as_for_eight(device, monkeypatch):
    monkeypatch.setattr(convex, "BLOCK_ENTRIES", 200 * 10)   # blocks of 10 anchors for 200 codes
    codes = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)).to(device)
    sampler = build_sampler("path:mode=knn").fit(codes)

    def draw(n: int):
        return lambda: sampler.sample(n, generator=torch.Generator().manual_seed(2))
    assert count_waits(draw(10), device) == count_waits(draw(80), device)


def test_the_diffusion_schedule_is_copied_to_a_device_once_not_every_iteration():
    first, again = build_sampler("ddpm:steps=10").alpha_bar("cpu"), build_sampler("ddpm:steps=10").alpha_bar(
        torch.device("cpu"))
    assert first is again and torch.equal(first, cosine_alpha_bar(10).float())
