"""Shapes, ranges and config validation of the autoencoder families and their networks."""

from __future__ import annotations

import pytest
import torch

from latentatlas.models import MODELS, Batch, build_model, model_config
from latentatlas.models.nets import conv_stages

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64)]


def test_registry_has_the_autoencoders():
    assert {"ae", "vae", "cvae"} <= set(MODELS.names())


@pytest.mark.parametrize("family", ["ae", "vae"])
@pytest.mark.parametrize("architecture", ["conv", "mlp"])
@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_and_ranges(family, architecture, shape, generator):
    cfg = model_config(family, architecture=architecture, latent_dim=5, width=8)
    model = build_model(cfg, shape)
    assert model.latent_dim == 5 and model.image_shape == shape and model.config is cfg
    x = torch.rand(3, *shape, generator=generator)
    posterior = model.encode(x)
    assert posterior.mean.shape == (3, 5)
    assert (posterior.logvar is None) == (family == "ae")
    z = posterior.sample(generator)
    y = model.decode(z).detach()
    assert y.shape == (3, *shape)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    total, terms = model.loss(Batch(x), generator=generator)
    assert total.ndim == 0 and torch.isfinite(total)
    assert "recon" in terms and (("kl" in terms) == (family == "vae"))
    total.backward()
    assert all(p.grad is not None for p in model.parameters())
    [phase] = model.phases()
    assert phase.name == "main" and len(phase.parameters()) == len(list(model.parameters()))


@pytest.mark.parametrize("size,stages", [(28, 2), (32, 3), (64, 4), (96, 5), (8, 1), (27, 0)])
def test_conv_stages(size, stages):
    assert conv_stages(size, size) == stages


@pytest.mark.parametrize("shape", [(1, 27, 27), (3, 6, 6), (1, 8, 8)])
def test_conv_rejects_sizes_it_cannot_handle(shape):
    with pytest.raises(ValueError, match=r"image_shape.*conv.*got \d+x\d+"):
        build_model(model_config("vae", architecture="conv"), shape)
    model = build_model(model_config("vae", architecture="mlp", width=8), shape)  # the MLP takes any size
    assert model.decode(torch.zeros(2, model.latent_dim)).shape == (2, *shape)


def test_conv_non_square():
    model = build_model(model_config("vae", architecture="conv", width=8), (3, 32, 48))
    assert model.decode(model.encode(torch.rand(2, 3, 32, 48)).mean).shape == (2, 3, 32, 48)


@pytest.mark.parametrize("changes,pattern", [
    ({"likelihood": "x"}, r"model.likelihood: expected one of 'bernoulli', 'gaussian', got 'x'"),
    ({"family": "nope"}, r"model.family: expected one of .*'ae'.*got 'nope'"),
    ({"architecture": "resnet"}, r"model.architecture: expected one of .*got 'resnet'"),
    ({"latent_dim": 0}, r"model.latent_dim: expected an int >= 1, got 0"),
    ({"width": 2.5}, r"model.width: expected .*int.*got .*2.5"),
    ({"kl_weight": -1.0}, r"model.kl_weight: expected a finite number >= 0, got -1.0"),
    ({"kl_warmup_epochs": float("nan")}, r"model.kl_warmup_epochs"),
    ({"depth": 3}, r"model: unknown key\(s\) \['depth'\] for family 'vae'"),
    ({"hidden_layers": 0}, r"model.hidden_layers: expected an int >= 1, got 0"),
])
def test_bad_config_errors(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_model(model_config(changes.pop("family", "vae"), **changes), (1, 28, 28))


def test_a_config_built_by_hand_is_checked_too():
    from latentatlas.models.ae import VAEConfig

    with pytest.raises(ValueError, match=r"model.latent_dim: expected an int >= 1, got -2"):
        build_model(VAEConfig(latent_dim=-2), (1, 28, 28))
    with pytest.raises(TypeError, match=r"family 'vae' takes a VAEConfig"):
        from latentatlas.config import ModelConfig

        build_model(ModelConfig(family="vae"), (1, 28, 28))


def test_bad_image_shape_and_input():
    with pytest.raises(ValueError, match="image_shape"):
        build_model(model_config("vae"), (28, 28))
    with pytest.raises(TypeError, match="image_shape"):
        build_model(model_config("vae"), "28x28")
    model = build_model(model_config("vae", architecture="mlp", width=8), (1, 28, 28))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        model.encode(torch.rand(2, 3, 28, 28))


def test_hidden_layers_changes_depth():
    shallow = build_model(model_config("vae", architecture="mlp", width=8, hidden_layers=1), (1, 8, 8))
    deep = build_model(model_config("vae", architecture="mlp", width=8, hidden_layers=3), (1, 8, 8))
    linears = lambda m: sum(isinstance(l, torch.nn.Linear) for l in m.encoder.modules())  # noqa: E731
    assert (linears(shallow), linears(deep)) == (2, 4)


def test_conditional_vae_uses_the_label():
    model = build_model(model_config("cvae", architecture="mlp", latent_dim=3, width=16), (1, 8, 8), n_classes=4)
    z = torch.zeros(2, 3)
    a, b = model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([0, 3]))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="y: the conditional 'cvae' model needs class labels"):
        model.decode(z)
    with pytest.raises(ValueError, match=r"y: expected 2 labels in \[0, 4\)"):
        model.decode(z, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="model.conditional: the 'cvae' model is class-conditional and needs"):
        build_model(model_config("cvae"), (1, 28, 28))


@pytest.mark.parametrize("family", ["ae", "vae", "aae"])
def test_decoder_output_chooses_the_last_layer(family):
    """'transposed' (the default): the last transposed conv makes the image channels; 'conv3x3': it makes
    ``width`` channels at full resolution and a 3x3 conv the image channels."""
    shape = (3, 32, 32)
    default = build_model(model_config(family, width=8, latent_dim=4), shape)
    older = build_model(model_config(family, width=8, latent_dim=4, decoder_output="conv3x3"), shape)
    assert default.config.decoder_output == "transposed"
    last = default.decoder.body[-1]
    assert isinstance(last, torch.nn.ConvTranspose2d) and (last.in_channels, last.out_channels) == (8, 3)
    convs = [m for m in older.decoder.body if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(type(m).__name__, m.out_channels) for m in convs[-2:]] == [("ConvTranspose2d", 8), ("Conv2d", 3)]
    assert convs[-1].kernel_size == (3, 3)
    z = torch.zeros(2, 4)
    assert default.decode(z).shape == older.decode(z).shape == (2, *shape)
    with pytest.raises(ValueError, match=r"model.decoder_output: expected one of 'transposed', 'conv3x3', got 'x'"):
        model_config(family, decoder_output="x")
