"""VQ-VAE: the EMA codebook update against its closed form, k-means initialisation, dead-code reset,
usage over an epoch, code grids through encode/decode, and re-quantised interpolation."""

from __future__ import annotations

import math

import pytest
import torch

from latentatlas.models import build_model, model_config
from latentatlas.models.quantize import EPS, VectorQuantizer


def test_ema_update_equals_its_closed_form():
    vq = VectorQuantizer(3, 2, decay=0.9, dead_after=0, kmeans_init=False)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    vq.ema_sum.copy_(vq.codebook)
    count0, sum0 = vq.ema_count.clone(), vq.ema_sum.clone()
    flat = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [9.0, 1.0]])      # two vectors to code 0, one to code 1
    indices = vq.nearest(flat)
    assert indices.tolist() == [0, 0, 1]
    vq.ema_update(flat, indices)
    n = torch.tensor([2.0, 1.0, 0.0])
    count = 0.9 * count0 + 0.1 * n
    sums = 0.9 * sum0 + 0.1 * torch.stack([flat[:2].sum(0), flat[2], torch.zeros(2)])
    smoothed = (count + EPS) / (count.sum() + 3 * EPS) * count.sum()
    torch.testing.assert_close(vq.ema_count, count)
    torch.testing.assert_close(vq.codebook, sums / smoothed[:, None])


def test_kmeans_initialisation_and_dead_code_reset():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0], [0.0, -5.0]])
    ze = (centres[torch.arange(400) % 4] + 0.1 * torch.randn(400, 2, generator=g)).T.reshape(1, 2, 20, 20)
    vq = VectorQuantizer(4, 2, decay=0.9, dead_after=0, kmeans_init=True).train()
    vq(ze, torch.Generator().manual_seed(1))
    assert bool(vq.initialized)
    matched = torch.cdist(centres, vq.codebook).min(1).values
    assert float(matched.max()) < 0.5                                  # one code per cluster
    # a collapsed codebook: every code far away but one, so one code takes every vector
    dead = VectorQuantizer(8, 2, decay=0.99, dead_after=3, kmeans_init=False).train()
    dead.codebook.copy_(torch.full((8, 2), 100.0))
    dead.codebook[0] = 0.0
    dead.ema_sum.copy_(dead.codebook)
    usage = []
    for step in range(6):
        dead(ze, torch.Generator().manual_seed(step))
        usage.append(dead.epoch_usage()["codebook_usage"])
    assert usage[0] == 1 / 8 and usage[-1] > 0.5                        # reset revives the unused codes


def test_dead_codes_take_rows_of_the_batch_and_live_codes_keep_their_vectors():
    """Every code draws a row each step (counting the dead ones would wait for a GPU); only the dead use it."""
    vq = VectorQuantizer(4, 2, update="loss", dead_after=2, kmeans_init=False).train()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))
    ze = torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(0))   # every row nearest code 0
    flat = ze.permute(0, 2, 3, 1).reshape(-1, 2)
    vq(ze, torch.Generator().manual_seed(1))                             # step 1: nothing unused for 2 steps
    assert torch.equal(vq.codebook[1:], torch.tensor([[50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))
    vq(ze, torch.Generator().manual_seed(2))                             # step 2: codes 1-3 are dead
    assert torch.equal(vq.codebook[0], torch.zeros(2))
    assert all(any(torch.equal(code, row) for row in flat) for code in vq.codebook[1:])
    assert vq.last_used.tolist() == [2, 2, 2, 2] and torch.equal(vq.ema_count[1:], torch.ones(3))


def test_a_loaded_uninitialised_codebook_runs_its_k_means_again():
    ze = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    vq = VectorQuantizer(4, 2, kmeans_init=True).train()
    fresh = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(ze, torch.Generator().manual_seed(1))
    assert bool(vq.initialized)
    vq.load_state_dict(fresh)
    vq.codebook.fill_(9.0)
    vq(ze, torch.Generator().manual_seed(1))
    assert bool(vq.initialized) and float(vq.codebook.abs().max()) < 9.0


def test_vqvae_codes_are_grids_and_usage_is_counted_over_an_epoch(tmp_path):
    from latentatlas.config import TrainConfig
    from latentatlas.data.base import ImageDataset, assign_split
    from latentatlas.training import train

    model = build_model(model_config("vqvae", latent_dim=4, width=8, codebook_size=16, dead_after=5),
                        (1, 16, 16))
    assert model.code_kind == "discrete" and model.code_shape == (4, 4)
    x = torch.rand(3, 1, 16, 16)
    codes = model.eval().encode(x)
    assert codes.shape == (3, 4, 4) and codes.dtype == torch.long
    assert model.decode(codes).shape == (3, 1, 16, 16)
    torch.testing.assert_close(model.decode(model.encode_continuous(x)), model.decode(codes))
    with pytest.raises(ValueError, match=r"z: codes must lie in \[0, 16\)"):
        model.decode(torch.full((1, 4, 4), 16))
    images = (torch.rand(80, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    data = assign_split(ImageDataset("noise", images), seed=0, val_fraction=0.2, test_fraction=0.1)
    result = train(model, data, TrainConfig(epochs=2, batch_size=16, lr=1e-2, patience=None, device="cpu",
                                            progress=False), tmp_path, seed=0)
    for line in result.history:
        assert 0 < line["codebook_usage"] <= 1 and 1 <= line["codebook_perplexity"] <= 16
        assert "train_commitment" in line and "val_recon" in line


def test_requantised_interpolation_ends_at_the_endpoint_codes():
    from latentatlas.latent.discrete import cell_changes, requantized_paths
    from latentatlas.latent.interpolate import steps

    torch.manual_seed(0)
    model = build_model(model_config("vqvae", latent_dim=4, width=8, codebook_size=32), (1, 16, 16)).eval()
    x0, x1 = torch.rand(5, 1, 16, 16), torch.rand(5, 1, 16, 16)
    codes, frames = requantized_paths(model, x0, x1, steps(7))
    assert codes.shape == (5, 7, 4, 4) and frames.shape == (5, 7, 1, 16, 16)
    assert torch.equal(codes[:, 0], model.encode(x0)) and torch.equal(codes[:, -1], model.encode(x1))
    out = cell_changes(codes)
    differing = float((codes[:, 0] != codes[:, -1]).flatten(1).sum(1).double().mean())
    assert out["cell_changes_per_path"] >= differing and out["cells_differing_at_ends"] == differing / 16
    assert math.isclose(out["cells_changed_per_step"] * 6, out["cell_changes_per_path"])
