"""Inversion: codes for a model without an encoder, and the choice between encoder and inversion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentatlas.latent.codes import CodeMap, resolve_method
from latentatlas.latent.inversion import Inverter
from latentatlas.models import build_model, model_config


class LinearGenerator(nn.Module):
    """A decoder without an encoder: x = sigmoid(W z + b) as (B, 1, 8, 8) images, W of full column rank."""

    has_encoder, conditional, n_classes, image_shape, latent_dim = False, False, None, (1, 8, 8), 4

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.lin = nn.Linear(4, 64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(64, 4, generator=g))
            self.lin.bias.zero_()
        self.config = model_config("gan", architecture="mlp", latent_dim=4, width=64)

    def prior_sample(self, n, *, generator=None):
        return torch.randn(n, 4, generator=generator)

    def decode(self, z, y=None):
        return torch.sigmoid(self.lin(z)).view(-1, 1, 8, 8)


def test_inversion_recovers_the_codes_of_a_known_generator(tmp_path):
    model = LinearGenerator()
    g = torch.Generator().manual_seed(1)
    z_train, z_test = torch.randn(2000, 4, generator=g), torch.randn(100, 4, generator=g)
    with torch.no_grad():
        train_images, test_images = model.decode(z_train), model.decode(z_test)
    train_u8 = (train_images * 255).round().to(torch.uint8)
    encoder_only = Inverter(model, refine_steps=0).fit(model, train_u8, steps=400, generator=g)
    refined = Inverter(model, refine_steps=200, lr=0.05, prior_weight=0.0)
    refined.encoder.load_state_dict(encoder_only.encoder.state_dict())
    z_enc, z_ref = encoder_only.invert(model, test_images), refined.invert(model, test_images)
    err = lambda z: float((z - z_test).norm(dim=1).mean() / z_test.norm(dim=1).mean())  # noqa: E731
    assert err(z_enc) < 0.3                      # the encoder alone is close
    assert err(z_ref) < 0.02 < err(z_enc)        # per-image optimisation finishes the job
    with torch.no_grad():
        pixel = float((model.decode(z_ref) - test_images).pow(2).mean())
    assert pixel < 1e-5
    loaded = Inverter.load(refined.save(tmp_path / "inverter.pt"), model)
    torch.testing.assert_close(loaded.invert(model, test_images[:5]), z_ref[:5], rtol=0, atol=1e-6)
    assert loaded.describe()["refine_steps"] == 200


def test_a_gan_is_inverted_and_a_vae_encoded():
    gan = build_model(model_config("gan", latent_dim=3, width=16), (1, 8, 8))
    vae = build_model(model_config("vae", architecture="mlp", latent_dim=3, width=16), (1, 8, 8))
    assert resolve_method(gan) == "inversion" and resolve_method(vae) == "encoder"
    assert resolve_method(vae, "inversion") == "inversion"   # a VAE's decoder can be inverted too
    with pytest.raises(ValueError, match="codes.method: 'encoder' asked, but the 'gan' model has no encoder"):
        resolve_method(gan, "encoder")
    with pytest.raises(ValueError, match="codes.method: expected one of"):
        resolve_method(gan, "magic")
    with pytest.raises(ValueError, match="cannot decode"):
        resolve_method(nn.Linear(2, 2), "inversion")
    with pytest.raises(ValueError, match="inversion needs a fitted Inverter"):
        CodeMap(gan, "inversion")
    x = torch.rand(5, 1, 8, 8)
    z, logvar = CodeMap(vae, "encoder").encode(x)
    assert z.shape == (5, 3) and logvar.shape == (5, 3)
    inverter = Inverter(gan, refine_steps=2).fit(gan, (x * 255).to(torch.uint8), steps=3)
    z, logvar = CodeMap(gan, "inversion", inverter).encode(x)
    assert z.shape == (5, 3) and logvar is None and torch.isfinite(z).all()


def test_a_conditional_generator_needs_labels_for_each_image_to_invert():
    cgan = build_model(model_config("cgan", architecture="mlp", latent_dim=3, width=16), (1, 8, 8), n_classes=3)
    images, labels = torch.zeros(6, 1, 8, 8, dtype=torch.uint8), torch.arange(6) % 3
    inverter = Inverter(cgan, refine_steps=0).fit(cgan, images, labels, steps=2)
    assert inverter.invert(cgan, images, labels).shape == (6, 3)
    for call in (lambda: inverter.invert(cgan, images), lambda: Inverter(cgan).fit(cgan, images, steps=1)):
        with pytest.raises(ValueError, match="labels: the conditional 'cgan' model needs a class label per code"):
            call()
    with pytest.raises(ValueError, match=r"expected 6 labels in \[0, 3\)"):
        inverter.invert(cgan, images, labels + 1)


def test_inverter_file_errors(tmp_path):
    gan = build_model(model_config("gan", latent_dim=3, width=16), (1, 8, 8))
    with pytest.raises(FileNotFoundError, match="run `latentatlas encode` first"):
        Inverter.load(tmp_path / "missing.pt", gan)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="corrupt or not a latentatlas inverter"):
        Inverter.load(tmp_path / "junk.pt", gan)
    path = Inverter(gan).save(tmp_path / "inv.pt")
    other = build_model(model_config("gan", latent_dim=5, width=16), (1, 8, 8))
    with pytest.raises(ValueError, match="was made for"):
        Inverter.load(path, other)
    with pytest.raises(ValueError, match="codes.refine_steps: expected an int >= 0, got -1"):
        Inverter(gan, refine_steps=-1)


def test_the_encoder_starts_from_its_generator_and_leaves_the_global_one_alone():
    """`latentatlas encode` alone gave other codes each time: the encoder's first weights came from torch's
    global generator, which nothing seeds outside training (and which starts anew in every process)."""
    gan = build_model(model_config("gan", latent_dim=3, width=16), (1, 8, 8))
    first = Inverter(gan, generator=torch.Generator().manual_seed(3)).state_dict()
    torch.rand(7)                                                        # the global generator moves on
    state = torch.get_rng_state()
    second = Inverter(gan, generator=torch.Generator().manual_seed(3)).state_dict()
    assert torch.equal(torch.get_rng_state(), state)                    # ... and is left where it was
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = Inverter(gan, generator=torch.Generator().manual_seed(4)).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)
