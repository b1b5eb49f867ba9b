"""The learned samplers: ddpm recovers a known mixture, its ancestral draws are Ho et al.'s posterior steps,
and DDIM (eta 0 or 1, every step or strided) matches DDPM; two-stage learns a curve of
codes; fits are seeded and resume after an interruption to the weights of an uninterrupted fit."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from scipy import stats

from latentatlas.fileio import torch_load, torch_save
from latentatlas.latent.samplers import build_sampler, learned, load_sampler
from latentatlas.latent.samplers.ddpm import cosine_alpha_bar

MEANS = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, -3.0]], dtype=torch.float64)
STD = 0.5


def mixture(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return MEANS[torch.randint(4, (n,), generator=g)] + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)


def true_log_density(x: torch.Tensor) -> torch.Tensor:
    d2 = torch.cdist(x.double(), MEANS).pow(2)
    return torch.logsumexp(-d2 / (2 * STD**2), dim=1) - math.log(4) - math.log(2 * math.pi * STD**2)


def test_cosine_schedule():
    abar = cosine_alpha_bar(100)
    assert abar[0] == 1 and bool((abar[1:] < abar[:-1]).all()) and float(abar[-1]) < 1e-3
    assert float(abar[50]) == pytest.approx(math.cos((0.5 + 0.008) / 1.008 * math.pi / 2) ** 2
                                            / math.cos(0.008 / 1.008 * math.pi / 2) ** 2, rel=1e-9)


@pytest.fixture(scope="module")
def fitted_ddpm():
    return build_sampler("ddpm:steps=100,iters=6000,hidden=128,depth=2,lr=0.002").fit(
        mixture(4000, 0).float(), generator=torch.Generator().manual_seed(1))


def test_ddpm_recovers_a_known_mixture(fitted_ddpm):
    truth = float(true_log_density(mixture(3000, 2)).mean())          # minus the entropy, about -2.3 nats
    ours = float(true_log_density(fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(3))).mean())
    one_gaussian = build_sampler("gaussian").fit(mixture(4000, 0).float())
    blurred = float(true_log_density(one_gaussian.sample(3000, generator=torch.Generator().manual_seed(3))).mean())
    assert abs(ours - truth) < 0.3 and blurred < truth - 2.0          # the margin is far tighter than the baseline's
    modes = torch.cdist(fitted_ddpm.sample(2000, generator=torch.Generator().manual_seed(4)).double(), MEANS).argmin(1)
    assert torch.bincount(modes, minlength=4).min() > 350             # every mode, about equally


def test_ddim_with_every_step_matches_ddpm_in_distribution(fitted_ddpm):
    """Two-sample Kolmogorov-Smirnov distance on each coordinate and on the radius.  The two samplers agree
    exactly only for a perfect denoiser; with this one two DDPM draws sit at KS 0.02 and DDIM at 0.05, while
    one DDIM step (the power check) is at 0.6 or more."""
    ddpm = fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(5), method="ddpm")
    ddim = fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(6), method="ddim", sample_steps=100)
    few = fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(6), method="ddim", sample_steps=1)
    for view in (lambda x: x[:, 0], lambda x: x[:, 1], lambda x: x.norm(dim=1)):
        assert stats.ks_2samp(view(ddpm).numpy(), view(ddim).numpy()).statistic < 0.08
        assert stats.ks_2samp(view(ddpm).numpy(), view(few).numpy()).statistic > 0.4


def test_ancestral_sampling_is_hos_posterior_step(fitted_ddpm):
    """method=ddpm (the DDIM update at eta 1 on every step) against the posterior q(x_{t-1} | x_t, x_0) of Ho et
    al. 2020 written out (mean and variance beta~_t), the predicted x_0 clipped alike: the same draws from the
    same generator."""
    s, n = fitted_ddpm, 500
    net, abar, steps = s.network(), s.alpha_bar("cpu"), s.steps
    g = torch.Generator().manual_seed(7)
    x = torch.randn(n, 2, generator=g)
    with torch.no_grad():
        for t in range(steps, 0, -1):
            eps = net(x, torch.full((n,), t / steps))
            x0 = ((x - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(s.low_, s.high_)
            beta = 1 - abar[t] / abar[t - 1]
            x = (abar[t - 1].sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - abar[t - 1]) * x) / (1 - abar[t])
            if t > 1:
                x = x + (beta * (1 - abar[t - 1]) / (1 - abar[t])).sqrt() * torch.randn(n, 2, generator=g)
    drawn = s.sample(n, generator=torch.Generator().manual_seed(7), method="ddpm")
    torch.testing.assert_close(drawn, s.restore(x), rtol=0, atol=1e-4)


def test_strided_ancestral_steps_match_ddpm_in_distribution(fitted_ddpm):
    """DDIM at eta 1 on a fifth of the steps against ancestral DDPM on all (KS as above), and eta is checked."""
    ddpm = fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(5), method="ddpm")
    strided = fitted_ddpm.sample(3000, generator=torch.Generator().manual_seed(8), method="ddim", sample_steps=20,
                                 eta=1.0)
    for view in (lambda x: x[:, 0], lambda x: x[:, 1], lambda x: x.norm(dim=1)):
        assert stats.ks_2samp(view(ddpm).numpy(), view(strided).numpy()).statistic < 0.08
    with pytest.raises(ValueError, match=r"eta: expected a finite number in \[0, 1\], got 2"):
        build_sampler("ddpm:method=ddim,eta=2")
    with pytest.raises(ValueError, match=r"eta: expected a finite number in \[0, 1\], got -0.5"):
        fitted_ddpm.sample(10, generator=torch.Generator().manual_seed(0), eta=-0.5)


def test_two_stage_learns_codes_on_a_curve():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(3000, generator=g) * 2 * math.pi
    curve = torch.stack([3 * t.cos(), 3 * t.sin()], dim=1) + 0.02 * torch.randn(3000, 2, generator=g)
    sampler = build_sampler("two-stage:iters=3000,hidden=128,depth=2").fit(curve, generator=g)
    draws = sampler.sample(2000, generator=torch.Generator().manual_seed(1))
    radius = draws.norm(dim=1)
    assert float((radius - 3).abs().median()) < 0.3                  # on the circle, not in the N(0, I) blob
    assert sampler.describe()["gamma"] < 0.1                         # the learned variance shrinks (Dai & Wipf)
    assert len(sampler.describe()["training_curve"]) >= 50


def test_fits_are_seeded_and_resume_to_the_same_weights(tmp_path, monkeypatch):
    codes = mixture(500, 0).float()
    spec = "ddpm:steps=20,iters=120,hidden=16,depth=1,checkpoint_every=50"
    a = build_sampler(spec).fit(codes, generator=torch.Generator().manual_seed(3))
    b = build_sampler(spec).fit(codes, generator=torch.Generator().manual_seed(3))
    for key, value in a.weights_.items():
        assert torch.equal(value, b.weights_[key])
    from latentatlas.latent.samplers.ddpm import DDPM

    calls, real = {"n": 0}, DDPM.training_loss

    def crash_at_70(self, net, x, *, generator):
        calls["n"] += 1
        if calls["n"] == 70:
            raise KeyboardInterrupt("killed")
        return real(self, net, x, generator=generator)

    monkeypatch.setattr(DDPM, "training_loss", crash_at_70)
    with pytest.raises(KeyboardInterrupt):
        build_sampler(spec).fit(codes, generator=torch.Generator().manual_seed(3), checkpoint=tmp_path / "fit.pt")
    monkeypatch.setattr(DDPM, "training_loss", real)
    resumed = build_sampler(spec).fit(codes, generator=torch.Generator().manual_seed(3), checkpoint=tmp_path / "fit.pt")
    for key, value in a.weights_.items():
        torch.testing.assert_close(resumed.weights_[key], value, rtol=0, atol=1e-6)
    assert resumed.history_ == a.history_
    loaded = load_sampler(resumed.save(tmp_path / "ddpm.pt"))
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    torch.testing.assert_close(loaded.sample(10, generator=g()), resumed.sample(10, generator=g()))
    with pytest.raises(ValueError, match="sample_steps: expected an int in \\[1, 20\\] or None, got 50"):
        build_sampler("ddpm:steps=20,sample_steps=50,method=ddim")


def test_step_size_follows_a_half_cosine_and_the_average_is_validated():
    sampler = build_sampler("ddpm:iters=100,lr=0.002")
    assert [sampler.learning_rate(i) for i in (0, 50)] == pytest.approx([0.002, 0.001])
    assert sampler.learning_rate(99) == pytest.approx(0.001 * (1 + math.cos(math.pi * 0.99)))
    assert build_sampler("ddpm:iters=100,lr=0.002,lr_decay=none").learning_rate(99) == 0.002
    with pytest.raises(ValueError, match="ema"):
        build_sampler("ddpm:ema=1.5")
    with pytest.raises(ValueError, match="time_embedding: expected one of .*every-block.*got 'last'"):
        build_sampler("ddpm:time_embedding=last")


def saved_before(spec: str, key: str, tmp_path):
    """(a sampler fitted from ``spec``, the same sampler saved without the setting ``key`` and loaded): what a
    file written before that setting existed loads as."""
    old = build_sampler(spec).fit(mixture(200, 0).float(), generator=torch.Generator().manual_seed(1))
    path = old.save(tmp_path / "old.pt")
    saved = torch_load(path, "sampler")
    del saved["params"][key]
    torch_save(saved, path)
    return old, load_sampler(path)


def test_a_ddpm_saved_before_time_embedding_existed_loads_as_the_first_layer_network(tmp_path):
    """Files written before the ``time_embedding`` parameter hold a first-layer denoiser and no such key."""
    old, loaded = saved_before("ddpm:steps=10,iters=5,hidden=16,depth=1,time_embedding=first-layer",
                               "time_embedding", tmp_path)
    assert loaded.time_embedding == "first-layer"
    assert torch.equal(loaded.sample(50, generator=torch.Generator().manual_seed(2)),
                       old.sample(50, generator=torch.Generator().manual_seed(2)))
    assert build_sampler("ddpm").time_embedding == "every-block"   # new fits get the time-conditioned blocks


def test_a_ddim_sampler_saved_before_eta_existed_stays_deterministic(tmp_path):
    """Files written before ``eta`` drew DDIM at eta 0; the default since is eta 1 (on a quarter of the steps)."""
    old, loaded = saved_before("ddpm:steps=12,iters=5,hidden=16,depth=1,method=ddim,sample_steps=4,eta=0", "eta",
                               tmp_path)
    assert loaded.eta == 0.0
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    torch.testing.assert_close(loaded.sample(50, generator=g()), old.sample(50, generator=g()))
    fresh = build_sampler("ddpm:steps=12")
    assert (fresh.method, fresh.eta, fresh.ddim_steps()) == ("ddim", 1.0, 3)


def test_a_fit_with_its_progress_bar_shown_says_so_in_the_log_and_fits_the_same_weights(monkeypatch, caplog):
    """On a terminal the fit draws a bar (reading the loss now and then); it must change nothing it fits."""
    codes = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    fits = {}
    for shown in (False, True):
        monkeypatch.setattr(learned, "on_terminal", lambda: shown)
        with caplog.at_level(logging.INFO, logger=learned.__name__):
            fits[shown] = build_sampler("ddpm:iters=20,steps=10,hidden=16,depth=1").fit(
                codes, generator=torch.Generator().manual_seed(1))
    assert "ddpm: fitting 20 iterations on 100 codes" in caplog.text
    for key, value in fits[False].weights_.items():
        assert torch.equal(fits[True].weights_[key], value), key
