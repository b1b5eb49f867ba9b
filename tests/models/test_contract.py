"""The model contract, checked for every registered family: build, one training step per phase, the
save/load round trip, generate's shape and range, and same seed same output."""

from __future__ import annotations

import pytest
import torch

from latentatlas.models import MODELS, Batch, GenerativeModel
from latentatlas.training.checkpoint import load_model, save_model
from tests.models.small import N_CLASSES, SHAPE, small_model

def _batch(rows: int = 6) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.rand(rows, *SHAPE, generator=g), torch.randint(N_CLASSES, (rows,), generator=g))


@pytest.fixture(params=MODELS.names())
def family(request) -> str:
    return request.param


def test_declares_its_capabilities(family):
    model = small_model(family)
    assert isinstance(model, GenerativeModel) and model.config.family == family
    if model.code_kind == "continuous":
        assert model.code_shape == (model.latent_dim,)
    else:                                                    # grids of codebook indices, one per image cell
        assert model.code_kind == "discrete" and len(model.code_shape) == 2
    assert isinstance(model.has_encoder, bool)
    assert model.selection_metric in ("val_loss", "monitor_frechet")
    assert (model.validation_loss(_batch(), generator=torch.Generator()) is None) == (not model.has_encoder)


def test_one_step_of_each_phase_moves_only_its_parameters(family):
    model = small_model(family).train()
    batch, g = _batch(), torch.Generator().manual_seed(2)
    for phase in model.phases():
        params = phase.parameters()
        ids = {id(p) for p in params}
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        opt = torch.optim.Adam(params, lr=1e-2)
        opt.zero_grad(set_to_none=True)
        total, terms = phase.loss(batch, generator=g, progress=0.0)
        assert total.ndim == 0 and torch.isfinite(total), phase.name
        assert all(torch.isfinite(v).all() and not v.requires_grad for v in terms.values())
        total.backward()
        opt.step()
        if phase.after_step is not None:
            phase.after_step()
        moved = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
        owned = {name for name, p in model.named_parameters() if id(p) in ids}
        averaged = {name for name, p in model.named_parameters() if name.startswith("generator_ema.")}
        assert moved and moved <= owned | averaged, (phase.name, moved - owned)
        assert not (moved & averaged) or phase.after_step is not None   # only an after-step hook averages
        assert phase.repeat >= 1


def test_each_phase_trains_under_bf16_autocast(family):
    """train.precision bf16: every phase's loss is a finite float32 scalar close to its float32 value from the
    same weights and draws, and its gradients are finite float32."""
    full_model, mixed_model = small_model(family).train(), small_model(family).train()
    for full_phase, phase in zip(full_model.phases(), mixed_model.phases()):
        full, _ = full_phase.loss(_batch(), generator=torch.Generator().manual_seed(2), progress=0.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed, terms = phase.loss(_batch(), generator=torch.Generator().manual_seed(2), progress=0.0)
        assert mixed.dtype == torch.float32, phase.name
        assert all(v.dtype == torch.float32 for v in terms.values() if v.is_floating_point()), phase.name
        assert float(mixed.detach()) == pytest.approx(float(full.detach()), rel=0.05, abs=0.05), phase.name
        mixed.backward()
        grads = [p.grad for p in phase.parameters() if p.grad is not None]
        assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads), phase.name


def test_save_and_load_round_trip(family, tmp_path):
    model = small_model(family).eval()
    loaded = load_model(save_model(tmp_path / "m.pt", model))
    assert type(loaded) is type(model) and loaded.config == model.config
    z = model.prior_sample(5, generator=torch.Generator().manual_seed(3))
    y = torch.arange(5) % N_CLASSES if model.conditional else None
    torch.testing.assert_close(loaded.decode(z, y), model.decode(z, y), rtol=0, atol=0)


def test_generate_shape_range_and_seed(family):
    model = small_model(family).eval()
    y = torch.arange(7) % N_CLASSES if model.conditional else None
    with torch.no_grad():
        a = model.generate(7, generator=torch.Generator().manual_seed(4), y=y)
        b = small_model(family).eval().generate(7, generator=torch.Generator().manual_seed(4), y=y)
        c = model.generate(7, generator=torch.Generator().manual_seed(5), y=y)
    assert a.shape == (7, *SHAPE) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_codes_of_the_wrong_size_are_refused_naming_the_expected_shape(family):
    model = small_model(family).eval()
    if model.code_kind == "discrete":
        pytest.skip("code grids are checked by the VQ-VAE's own decode")
    y = torch.arange(2) % N_CLASSES if model.conditional else None
    with pytest.raises(ValueError, match=rf"z: expected codes of shape \(B, {model.latent_dim}\), got \(2, "):
        model.decode(torch.zeros(2, model.latent_dim + 1), y)
    with pytest.raises(ValueError, match=rf"\(B, {model.latent_dim}\), got \({model.latent_dim},\)"):
        model.decode(torch.zeros(model.latent_dim), y)
    assert model.decode(torch.zeros(2, model.latent_dim), y).shape == (2, *SHAPE)


def test_encoder_families_encode_and_the_others_say_why_not(family):
    model = small_model(family).eval()
    batch = _batch(3)
    if model.code_kind == "discrete":
        grids = model.encode(batch.x)
        assert grids.dtype == torch.long and grids.shape == (3, *model.code_shape)
        torch.testing.assert_close(model.decode(grids), model.decode(model.encode_continuous(batch.x)))
    elif model.has_encoder:
        assert model.encode(batch.x, batch.y if model.conditional else None).mean.shape == (3, model.latent_dim)
    else:
        with pytest.raises(NotImplementedError, match="has no encoder; its codes come from inversion"):
            model.encode(batch.x)


def test_infogan_codes_and_their_agreement_with_classes():
    from latentatlas.models.infogan import categorical_agreement

    model = small_model("infogan")   # latent 16 = 4 noise + 10 categorical + 2 continuous
    z = model.prior_sample(200, generator=torch.Generator().manual_seed(0), fixed=(0, 7))
    assert model.noise_dim == 4 and torch.equal(z[:, 4:14].argmax(1), torch.full((200,), 7))
    assert torch.equal(z[:, 4:14].sum(1), torch.ones(200)) and float(z[:, 14:].abs().max()) <= 1
    free = model.prior_sample(2000, generator=torch.Generator().manual_seed(1))[:, 4:14].argmax(1)
    assert torch.bincount(free, minlength=10).min() > 150                      # uniform over the 10 values
    permutation = torch.tensor([3, 1, 4, 0, 5, 9, 2, 6, 8, 7])
    model.decode = lambda codes, y=None: codes[:, 4:14].argmax(1).float().view(-1, 1, 1, 1) / 10  # code -> image
    out = categorical_agreement(model, lambda x: permutation[(x.flatten(1)[:, 0] * 10).round().long()],
                                n_per_value=20, generator=torch.Generator().manual_seed(2))
    assert out["error"] == 0.0 and out["mapping"] == {v: int(permutation[v]) for v in range(10)}
