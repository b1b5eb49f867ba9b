"""Loss functions and the VAE objective against closed forms and torch references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from latentatlas.models import Batch, build_model, model_config
from latentatlas.models.base import Posterior, batch_randn, batch_shard
from latentatlas.models.losses import bce_recon, gaussian_kl, kl_warmup, mse_recon, reconstruction_loss


def test_kl_of_standard_normal_posterior_is_zero():
    kl = gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 3))
    assert torch.equal(kl, torch.zeros(4))
    assert torch.equal(gaussian_kl(torch.ones(2, 3), None), torch.zeros(2))


def test_kl_closed_form():
    mean = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [math.log(0.25), 0.0]])
    # by hand, row 0: 0.5*(1 + 1 - 1 - 0) + 0.5*(4 + 4 - 1 - ln 4)
    row0 = 0.5 + 0.5 * (7.0 - math.log(4.0))
    kl = gaussian_kl(mean, logvar)
    assert kl[0].item() == pytest.approx(row0, rel=1e-6)
    reference = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(dim=1)
    torch.testing.assert_close(kl, reference)


def test_bce_matches_torch_sum_per_image(generator):
    logits = torch.randn(3, 2, 4, 4, generator=generator) * 3
    x = torch.rand(3, 2, 4, 4, generator=generator)
    per_image = bce_recon(logits, x)
    assert per_image.shape == (3,)
    for i in range(3):
        ref = F.binary_cross_entropy(torch.sigmoid(logits[i]), x[i], reduction="sum")
        assert per_image[i].item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(reconstruction_loss(logits, x, "bernoulli"), per_image)


def test_mse_and_gaussian_likelihood(generator):
    logits = torch.randn(2, 1, 3, 3, generator=generator)
    x = torch.rand(2, 1, 3, 3, generator=generator)
    ref = torch.stack([F.mse_loss(torch.sigmoid(logits[i]), x[i], reduction="sum") for i in range(2)])
    torch.testing.assert_close(reconstruction_loss(logits, x, "gaussian"), ref)
    torch.testing.assert_close(mse_recon(x, x), torch.zeros(2))
    with pytest.raises(ValueError, match="likelihood: expected one of"):
        reconstruction_loss(logits, x, "laplace")


def test_warmup_schedule():
    assert kl_warmup(0.0, 2.0, 4.0) == 0.0
    assert kl_warmup(1.0, 2.0, 4.0) == pytest.approx(0.5)
    assert kl_warmup(3.0, 2.0, 4.0) == pytest.approx(1.5)
    assert kl_warmup(4.0, 2.0, 4.0) == 2.0 and kl_warmup(9.0, 2.0, 4.0) == 2.0
    assert kl_warmup(math.inf, 2.0, 4.0) == 2.0
    assert kl_warmup(0.0, 2.0, 0.0) == 2.0


def _vae(**kw):
    torch.manual_seed(0)
    return build_model(model_config("vae", architecture="mlp", latent_dim=3, width=8, **kw), (1, 6, 6))


def test_beta_scales_kl_term_and_warmup_reaches_loss():
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    base, beta = _vae(), _vae(kl_weight=4.0, kl_warmup_epochs=2.0)
    beta.load_state_dict(base.state_dict())
    t1, terms1 = base.loss(Batch(x), generator=torch.Generator().manual_seed(2))
    for progress, weight in [(0.0, 0.0), (1.0, 2.0), (5.0, 4.0)]:
        t4, terms4 = beta.loss(Batch(x), generator=torch.Generator().manual_seed(2), progress=progress)
        torch.testing.assert_close(terms4["kl"], terms1["kl"])
        torch.testing.assert_close(terms4["recon"], terms1["recon"])
        assert terms4["kl_weight"].item() == weight
        torch.testing.assert_close(t4, terms1["recon"] + weight * terms1["kl"])
    torch.testing.assert_close(t1, terms1["recon"] + terms1["kl"])


def test_vae_loss_is_negative_elbo_by_hand():
    model = _vae()
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    total, _ = model.loss(Batch(x), generator=torch.Generator().manual_seed(4))
    post = model.encode(x)
    eps = torch.randn(post.mean.shape, generator=torch.Generator().manual_seed(4))
    z = post.mean + (0.5 * post.logvar).exp() * eps
    probs = model.decode(z)
    recon = F.binary_cross_entropy(probs, x, reduction="sum") / 4
    kl = kl_divergence(Normal(post.mean, post.std), Normal(0.0, 1.0)).sum() / 4
    assert total.item() == pytest.approx((recon + kl).item(), rel=1e-4)


def test_reparameterisation_follows_generator():
    model = _vae()
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    a = model.loss(Batch(x), generator=torch.Generator().manual_seed(7))[0]
    b = model.loss(Batch(x), generator=torch.Generator().manual_seed(7))[0]
    c = model.loss(Batch(x), generator=torch.Generator().manual_seed(8))[0]
    assert a.item() == b.item() and a.item() != c.item()


def test_ae_loss_is_reconstruction_of_mean():
    torch.manual_seed(0)
    model = build_model(model_config("ae", architecture="mlp", latent_dim=3, width=8), (1, 6, 6))
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(3))
    total, terms = model.loss(Batch(x))
    ref = F.binary_cross_entropy(model.reconstruct(x), x, reduction="sum") / 4
    assert total.item() == pytest.approx(ref.item(), rel=1e-4)
    assert set(terms) == {"recon"}
    post = model.encode(x)
    assert post.sample(torch.Generator()) is post.mean and torch.equal(post.kl(), torch.zeros(4))


def test_batch_shard_takes_rows_of_the_global_draw():
    full = torch.randn(7, 4, generator=torch.Generator().manual_seed(5))
    with batch_shard(2, 5, 7):
        part = batch_randn((3, 4), generator=torch.Generator().manual_seed(5))
        other = batch_randn((2, 4), generator=torch.Generator().manual_seed(5))  # not batch-shaped
        post = Posterior(torch.zeros(3, 4), torch.zeros(3, 4))
        sampled = post.sample(torch.Generator().manual_seed(5))
    torch.testing.assert_close(part, full[2:5], rtol=0, atol=0)
    torch.testing.assert_close(sampled, full[2:5], rtol=0, atol=0)
    torch.testing.assert_close(other, torch.randn(2, 4, generator=torch.Generator().manual_seed(5)))
    plain = batch_randn((7, 4), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(plain, full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="batch_shard"):
        with batch_shard(3, 2, 7):
            pass
