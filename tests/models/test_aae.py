"""The adversarial autoencoder: its priors, its three phases, and the codes it learns."""

from __future__ import annotations

import pytest
import torch

from latentatlas.models import Batch, build_model, model_config
from latentatlas.models.aae import mixture_means


def test_mixture_means_closed_form():
    axes = mixture_means(4, 3, 2.0)
    assert torch.equal(axes, torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [-2.0, 0, 0]]))
    polygon = mixture_means(8, 2, 1.5)
    assert torch.allclose(polygon.norm(dim=1), torch.full((8,), 1.5), atol=1e-6)
    assert torch.allclose(polygon[2], torch.tensor([0.0, 1.5]), atol=1e-6)


def test_priors_and_their_draws():
    normal = build_model(model_config("aae", architecture="mlp", latent_dim=4, width=16), (1, 8, 8))
    assert normal.normal_prior and not normal.uses_labels
    mix = build_model(model_config("aae", architecture="mlp", latent_dim=4, width=16, prior="mixture",
                                   prior_modes=6, prior_radius=5.0, prior_std=0.1), (1, 8, 8))
    assert not mix.normal_prior
    modes = torch.arange(600) % 6
    z = mix.prior_sample(600, generator=torch.Generator().manual_seed(0), modes=modes)
    assert torch.equal(torch.cdist(z, mix.prior_means).argmin(1), modes)
    assert float((z - mix.prior_means[modes]).std()) == pytest.approx(0.1, rel=0.1)
    free = torch.cdist(mix.prior_sample(3000, generator=torch.Generator().manual_seed(1)), mix.prior_means).argmin(1)
    assert torch.bincount(free, minlength=6).min() > 400
    with pytest.raises(ValueError, match="model.prior: 'labels' needs a dataset with class labels"):
        build_model(model_config("aae", prior="labels"), (1, 28, 28))
    labelled = build_model(model_config("aae", architecture="mlp", latent_dim=4, width=16, prior="labels"), (1, 8, 8),
                           n_classes=3)
    assert labelled.uses_labels and labelled.modes == 3
    with pytest.raises(ValueError, match="y: the AAE with prior 'labels' needs the batch's class labels"):
        labelled.discriminator_loss(Batch(torch.rand(4, 1, 8, 8)))


def test_three_phases_in_order():
    model = build_model(model_config("aae", architecture="mlp", latent_dim=2, width=16), (1, 8, 8))
    phases = model.phases()
    assert [p.name for p in phases] == ["reconstruction", "discriminator", "regularization"]
    assert {id(p) for p in phases[2].parameters()} == {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in phases[1].parameters()} == {id(p) for p in model.code_discriminator.parameters()}


def test_adversarial_regularisation_pulls_the_codes_to_the_prior(tmp_path):
    """Trained on the same digits with and without the adversarial phases' weight, the AAE's codes are
    close to N(0, I) (mean near 0, covariance eigenvalues near 1) and the plain autoencoder's are not.
    (720 steps: the adversarial phases at train.lr, five times the default, to match the prior in them; fp32,
    so that the bounds hold whatever precision "auto" picks on the test machine.)"""
    from latentatlas.config import DataConfig, TrainConfig
    from latentatlas.data import load_dataset
    from latentatlas.latent.codes import encode_images
    from latentatlas.training import train

    data = load_dataset(DataConfig(name="mnist", limit=1500), seed=0)
    cfg = TrainConfig(epochs=30, batch_size=64, lr=1e-3, patience=None, device="cpu", precision="fp32",
                      progress=False)
    stats = {}
    for weight in (1.0, 0.0):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = build_model(model_config("aae", architecture="mlp", latent_dim=2, width=128,
                                             adversarial_weight=weight, lr_discriminator=1e-3,
                                             lr_regularization=1e-3), data.image_shape)
        train(model, data, cfg, tmp_path / str(weight), seed=0)
        z, _ = encode_images(model, data.part("test").images)
        stats[weight] = (z.mean(0).norm(), torch.linalg.eigvalsh(torch.cov(z.T)))
    mean, eig = stats[1.0]
    assert float(mean) < 0.5 and 0.3 < float(eig.min()) and float(eig.max()) < 3.0
    plain_mean, plain_eig = stats[0.0]
    assert float(plain_mean) > 0.5 or float(plain_eig.max()) > 3.0 or float(plain_eig.min()) < 0.3
