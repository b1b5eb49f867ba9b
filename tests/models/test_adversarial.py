"""Adversarial losses, penalties, the EMA generator and DiffAugment against closed forms and references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from latentatlas.models import Batch, build_model, model_config
from latentatlas.models.augment import diff_augment, parse_policy
from latentatlas.models.base import batch_shard
from latentatlas.models.ema import ema_decay_at, ema_update, make_ema
from latentatlas.models.losses import discriminator_loss, generator_loss, gradient_penalty, r1_penalty


def test_adversarial_losses_closed_forms():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    log1p_exp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    ns_d = (log1p_exp(-2.0) + log1p_exp(1.0)) / 2 + (log1p_exp(0.5) + log1p_exp(-3.0)) / 2
    assert discriminator_loss("non-saturating", real, fake).item() == pytest.approx(ns_d, rel=1e-6)
    assert generator_loss("non-saturating", fake).item() == pytest.approx((log1p_exp(-0.5) + log1p_exp(3.0)) / 2,
                                                                        rel=1e-6)
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert generator_loss("hinge", fake).item() == pytest.approx(1.25)
    assert discriminator_loss("wasserstein", real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert generator_loss("wasserstein", fake).item() == pytest.approx(1.25)
    # the non-saturating discriminator loss is binary cross-entropy on logits
    bce = (F.binary_cross_entropy_with_logits(real, torch.ones(2))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros(2)))
    torch.testing.assert_close(discriminator_loss("non-saturating", real, fake), bce)
    with pytest.raises(ValueError, match="model.loss: expected one of"):
        generator_loss("minimax", fake)


def _critic() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1),
                               torch.nn.Flatten(0))


def test_gradient_penalty_equals_a_finite_difference_reference():
    critic = _critic().double()
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(5, 3, 2, 2, generator=g).double(), torch.rand(5, 3, 2, 2, generator=g).double()
    eps = torch.rand(5, generator=g).double()
    got = gradient_penalty(critic, real, fake, eps)
    h, want = 1e-6, []
    for i in range(5):  # central differences of the critic at each x_hat
        x_hat = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).flatten()
        grad = torch.zeros(12, dtype=torch.float64)
        for j in range(12):
            step = torch.zeros(12, dtype=torch.float64)
            step[j] = h
            with torch.no_grad():
                up, down = critic((x_hat + step).view(1, 3, 2, 2)), critic((x_hat - step).view(1, 3, 2, 2))
            grad[j] = float(up - down) / (2 * h)
        want.append((grad.norm() - 1) ** 2)
    assert got.item() == pytest.approx(float(torch.stack(want).mean()), rel=1e-6)
    got.backward()   # differentiable: it trains the critic (all but the last bias, which no input gradient sees)
    first = critic[1].weight.grad
    assert first is not None and torch.isfinite(first).all() and float(first.abs().sum()) > 0


def test_r1_penalty_of_a_linear_critic_is_the_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    x = torch.rand(6, 1, 2, 2).requires_grad_(True)
    assert r1_penalty(x.flatten(1) @ w, x).item() == pytest.approx(float(w.pow(2).sum()))
    critic = _critic().double()          # a non-linear critic: the mean squared input-gradient norm, by hand
    x = torch.rand(3, 3, 2, 2, dtype=torch.float64).requires_grad_(True)
    by_hand = torch.stack([torch.autograd.grad(critic(x[i:i + 1]).sum(), x)[0][i].pow(2).sum() for i in range(3)])
    assert r1_penalty(critic(x), x).item() == pytest.approx(float(by_hand.mean()), rel=1e-10)


def test_ema_update_equals_its_closed_form():
    net = torch.nn.Linear(3, 2)
    ema = make_ema(net)
    start = [p.detach().clone() for p in net.parameters()]
    expected = [p.clone() for p in start]
    for t in range(1, 6):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * t)
        d = ema_decay_at(t, 0.99)
        assert d == pytest.approx(min(0.99, (1 + t) / (10 + t)))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, net.parameters())]
        ema_update(ema, net, d)
    for got, want in zip(ema.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.parameters())


def test_gan_samples_with_the_ema_generator_and_checkpoints_it(tmp_path):
    model = build_model(model_config("gan", latent_dim=3, width=8, ema_decay=0.5), (1, 4, 4))
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.decode(z), model.generate_raw(z))   # the copy starts equal
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    model.update_ema()                                                   # d_1 = min(0.5, 2/11)
    assert int(model.ema_updates) == 1 and not torch.allclose(model.decode(z), model.generate_raw(z))
    assert torch.allclose(model.decode(z), model.generate_raw(z, average=True))
    assert any(k.startswith("generator_ema.") for k in model.state_dict()) and "ema_updates" in model.state_dict()


def test_the_ema_count_kept_on_the_host_follows_a_loaded_state():
    """update_ema counts on the host (reading the buffer every step would wait for a GPU); a load resets it."""
    model = build_model(model_config("gan", latent_dim=3, width=8, ema_decay=0.5), (1, 4, 4))
    model.update_ema()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.update_ema(), model.update_ema()
    assert int(model.ema_updates) == 3
    model.load_state_dict(state)
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    before = [a.clone() for a in model.generator_ema.parameters()]
    model.update_ema()                                                   # update 2 again: d_2 = min(0.5, 3/12)
    assert int(model.ema_updates) == 2
    for a, b, p in zip(model.generator_ema.parameters(), before, model.generator.parameters()):
        torch.testing.assert_close(a, 0.25 * b + 0.75 * p)


def test_diff_augment_policies():
    assert parse_policy("translation, cutout") == ("translation", "cutout") and parse_policy("") == ()
    with pytest.raises(ValueError, match="model.diff_augment: expected a comma-separated subset"):
        parse_policy("flip")
    x = torch.zeros(4, 1, 8, 8)
    x[:, :, 3:5, 3:5] = 1.0
    same = diff_augment(x, (), torch.Generator())
    assert same is x
    moved = diff_augment(x, ("translation",), torch.Generator().manual_seed(0))
    assert torch.equal(moved.sum((1, 2, 3)), x.sum((1, 2, 3)))            # a shift of at most 1 pixel keeps the square
    cut = diff_augment(torch.ones(4, 1, 8, 8), ("cutout",), torch.Generator().manual_seed(0))
    for image in cut[:, 0]:    # one zeroed rectangle of at most 4x4 (smaller where it meets the border)
        rows, cols = (image == 0).any(1).sum(), (image == 0).any(0).sum()
        assert 1 <= int((image == 0).sum()) == int(rows * cols) <= 16
    a = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    b = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    y = x.clone().requires_grad_(True)
    diff_augment(y, ("color", "translation", "cutout"), torch.Generator().manual_seed(3)).sum().backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0              # differentiable


def test_augmentation_draws_are_sharded_like_the_noise():
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    whole = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(1))
    with batch_shard(2, 5, 6):
        part = diff_augment(x[2:5], ("color", "translation", "cutout"), torch.Generator().manual_seed(1))
    torch.testing.assert_close(part, whole[2:5], rtol=0, atol=1e-6)


def test_gan_options_change_the_losses():
    x = Batch(torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    terms = {}
    for name, extra in {"gp": {"penalty": "gp"}, "r1": {"penalty": "r1"}, "hinge": {"loss": "hinge"},
                        "sn": {"spectral_norm": True}, "aug": {"diff_augment": "translation"}}.items():
        torch.manual_seed(0)
        model = build_model(model_config("gan", latent_dim=3, width=8, **extra), (1, 8, 8))
        terms[name] = model.discriminator_loss(x, generator=torch.Generator().manual_seed(1))[1]
    assert terms["gp"]["penalty"] > 0 and terms["r1"]["penalty"] > 0
    assert "penalty" not in terms["hinge"]
    with pytest.raises(ValueError, match=r"model.betas: expected two numbers in \[0, 1\)"):
        build_model(model_config("gan", betas=[0.5]), (1, 8, 8))
