"""Samplers of code grids: the contract over each, the categorical closed form, the PixelCNN's causal
mask (exhaustively on a small grid) and its likelihood on grids from a known independent categorical."""

from __future__ import annotations

import json

import pytest
import torch

from latentatlas.latent.samplers import SAMPLERS, build_sampler, load_sampler
from latentatlas.latent.samplers.pixelcnn import GatedPixelCNN
from tests.latent.samplers.small import small

GRID_NAMES = [name for name in SAMPLERS.names() if SAMPLERS.get(name).code_kind == "discrete"]


def known_categorical(seed: int = 0, cells: int = 9, values: int = 4) -> torch.Tensor:
    """Per-cell probabilities (cells, values) of an independent categorical on a 3 x 3 grid."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(cells, values, generator=g, dtype=torch.float64), dim=1)


def grids(n: int, probs: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.multinomial(probs, n, replacement=True, generator=g).T.reshape(n, 3, 3)


def test_registry_has_the_grid_samplers():
    assert set(GRID_NAMES) == {"categorical", "pixelcnn"}


@pytest.mark.parametrize("name", GRID_NAMES)
def test_grid_sampler_contract(name, tmp_path):
    probs = known_categorical()
    z = grids(200, probs, 1)
    s = small(name)
    assert s.fit(z, generator=torch.Generator().manual_seed(0)) is s
    a = s.sample(6, generator=torch.Generator().manual_seed(3))
    assert a.shape == (6, 3, 3) and a.dtype == torch.long and int(a.min()) >= 0 and int(a.max()) < 4
    assert torch.equal(a, s.sample(6, generator=torch.Generator().manual_seed(3)))
    assert s.sample(0).shape == (0, 3, 3)
    scores = s.score_samples(z[:5])
    assert scores.shape == (5,) and bool((scores < 0).all())
    t = load_sampler(s.save(tmp_path / "s.pt"))
    torch.testing.assert_close(t.score_samples(z[:5]), scores)
    assert torch.equal(t.sample(6, generator=torch.Generator().manual_seed(3)), a)
    assert build_sampler(s.spec).get_params() == s.get_params()
    json.dumps(s.describe())
    with pytest.raises(ValueError, match=r"z: expected integer code grids \(n, h, w\)"):
        small(name).fit(z.float())
    with pytest.raises(ValueError, match="z: expected code values >= 0"):
        small(name).fit(z - 1)
    with pytest.raises(ValueError, match=r"z: expected grids of shape \(3, 3\)"):
        s.score_samples(z[:, :2])
    with pytest.raises(ValueError, match="z: expected code values < 4"):
        s.score_samples(z + 4)


def test_categorical_equals_its_closed_form():
    z = torch.tensor([[[0, 1]], [[0, 2]], [[1, 2]]])          # 3 grids of 1 x 2 cells, values 0..2
    s = build_sampler("categorical:alpha=0.5,values=3").fit(z)
    cell0 = torch.tensor([2.5, 1.5, 0.5]) / 4.5               # counts (2, 1, 0) + 0.5, over 3 + 3 * 0.5
    cell1 = torch.tensor([0.5, 1.5, 2.5]) / 4.5
    expected = (cell0[0] * cell1[2]).log()
    torch.testing.assert_close(s.score_samples(torch.tensor([[[0, 2]]])), expected.double().view(1))
    draws = s.sample(20000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws[:, 0, 0], minlength=3).double() / 20000
    torch.testing.assert_close(freq, cell0.double(), atol=0.01, rtol=0)


def test_pixelcnn_mask_is_causal_exhaustively():
    torch.manual_seed(0)
    net = GatedPixelCNN(values=3, dim=8, layers=3, kernel=3, n_classes=None).eval()
    h, w = 4, 4
    base = torch.randint(3, (1, h, w), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(base)
        for p in range(h * w):
            pi, pj = divmod(p, w)
            for q in range(p, h * w):             # the cell itself and every later cell in raster order
                changed = base.clone()
                changed[0, q // w, q % w] = (changed[0, q // w, q % w] + 1) % 3
                assert torch.equal(net(changed)[0, :, pi, pj], ref[0, :, pi, pj]), (p, q)
            if p > 0:                              # and it does read the cells before it
                earlier = base.clone().view(-1)
                earlier[:p] = (earlier[:p] + 1) % 3
                assert not torch.equal(net(earlier.view(1, h, w))[0, :, pi, pj], ref[0, :, pi, pj]), p


def test_pixelcnn_row_logits_equal_the_whole_grids():
    torch.manual_seed(0)
    net = GatedPixelCNN(values=5, dim=8, layers=3, kernel=3, n_classes=4).eval()
    codes = torch.randint(5, (6, 4, 3), generator=torch.Generator().manual_seed(1))
    y = torch.arange(6) % 4
    with torch.no_grad():
        whole = net(codes, y)
        for i in range(4):
            later = codes.clone()
            later[:, i:] = torch.randint(5, later[:, i:].shape, generator=torch.Generator().manual_seed(i))
            context = net.row_context(later, i, y)           # row i and below changed: the context must not care
            torch.testing.assert_close(net.row_logits(codes[:, i], context, y), whole[:, :, i], rtol=1e-5, atol=1e-6)


def test_pixelcnn_learns_a_known_independent_categorical():
    probs = known_categorical(seed=2)
    truth = float((probs * probs.log()).sum())                     # expected log-likelihood of a grid
    s = build_sampler("pixelcnn:iters=600,dim=32,layers=3,lr=0.003").fit(
        grids(4000, probs, 3), generator=torch.Generator().manual_seed(0))
    held_out = grids(2000, probs, 4)
    ours = float(s.score_samples(held_out).mean())
    exact = float(probs.log().gather(1, held_out.reshape(2000, 9).T).sum(0).mean())
    assert abs(ours - exact) < 0.15 and abs(exact - truth) < 0.2     # nats per grid of 9 cells
    # drawn cell by cell, samples score under the truth like real grids (uniform draws would score ~ -13)
    draws = s.sample(3000, generator=torch.Generator().manual_seed(5)).reshape(3000, 9)
    assert abs(float(probs.log().gather(1, draws.T).sum(0).mean()) - truth) < 0.5


def test_conditional_pixelcnn_needs_labels():
    z = grids(100, known_categorical(), 1)
    with pytest.raises(ValueError, match="labels: a conditional pixelcnn needs one class label per grid"):
        build_sampler("pixelcnn:conditional=true,iters=5,dim=8,layers=1").fit(z)
    s = build_sampler("pixelcnn:conditional=true,iters=5,dim=8,layers=1").fit(z, labels=torch.arange(100) % 2)
    assert s.sample(4, labels=torch.tensor([0, 1, 0, 1])).shape == (4, 3, 3)
    with pytest.raises(ValueError, match="labels: a conditional pixelcnn draws one grid per label"):
        s.sample(4)
