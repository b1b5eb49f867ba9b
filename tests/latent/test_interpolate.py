"""Interpolators against closed forms; convex, grid and one-vs-many helpers."""

import math

import pytest
import torch

from latentatlas.latent import interpolate as it


def _unit_pair(theta: float, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    e0, e1 = q[:, 0], q[:, 1]
    return e0[None], (math.cos(theta) * e0 + math.sin(theta) * e1)[None]


@pytest.mark.parametrize("name", it.INTERPOLATORS.names())
def test_contract_shapes_and_endpoints(name):
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    out = it.INTERPOLATORS.get(name)(z0, z1, it.steps(7))
    assert out.shape == (4, 7, 6)
    assert torch.equal(out[:, 0], z0) and torch.equal(out[:, -1], z1)    # the codes themselves, not an ulp off


@pytest.mark.parametrize("theta", [0.3, 1.2, 2.5])
def test_slerp_closed_form(theta):
    z0, z1 = _unit_pair(theta)
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    path = it.slerp(z0, z1, t)[0]
    torch.testing.assert_close(path.norm(dim=1), torch.ones(9, dtype=torch.float64))
    angles = torch.arccos((path @ z0[0]).clamp(-1, 1))
    torch.testing.assert_close(angles, t * theta)


def test_slerp_falls_back_to_lerp_for_collinear_codes():
    z0 = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    z1 = 2 * z0
    t = it.steps(5, dtype=torch.float64)
    torch.testing.assert_close(it.slerp(z0, z1, t), it.lerp(z0, z1, t))
    assert torch.isfinite(it.slerp(z0, z0, t)).all()


def test_lerp_closed_form_and_norm_interpolation():
    z0, z1 = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 4.0]])
    t = torch.tensor([0.25, 0.5])
    torch.testing.assert_close(it.lerp(z0, z1, t)[0], torch.tensor([[1.5, 1.0], [1.0, 2.0]]))
    norms = it.normalised(z0, z1, t)[0].norm(dim=1)
    torch.testing.assert_close(norms, torch.tensor([2.5, 3.0]))


def test_convex_weights_sum_to_one_and_combination():
    g = torch.Generator().manual_seed(0)
    w = it.random_convex_weights(50, 4, generator=g)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(50))
    w2 = it.random_convex_weights(10, 3, generator=g, concentration=0.5)
    torch.testing.assert_close(w2.sum(dim=1), torch.ones(10))
    codes = torch.eye(4)
    torch.testing.assert_close(it.convex_combination(codes, w), w)
    with pytest.raises(ValueError, match="sum"):
        it.convex_combination(codes, torch.full((1, 4), 0.5))
    with pytest.raises(ValueError, match="negative"):
        it.convex_combination(codes, torch.tensor([[1.5, -0.5, 0.0, 0.0]]))


@pytest.mark.parametrize("n", [1, 2, 7])
def test_triangle_weights_are_a_regular_grid_of_the_simplex(n):
    w = it.triangle_weights(n, dtype=torch.float64)
    assert w.shape == ((n + 1) * (n + 2) // 2, 3)
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(len(w), dtype=torch.float64))   # barycentric
    counts = w * n
    torch.testing.assert_close(counts, counts.round())                  # entries are multiples of 1/n
    assert len({tuple(row) for row in counts.round().int().tolist()}) == len(w)   # every lattice point once
    torch.testing.assert_close(w[0], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(w[-n - 1:], it.lerp(torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64),
                                                   torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64),
                                                   it.steps(n + 1, dtype=torch.float64))[0])   # bottom row B -> C


def test_triangle_edges_are_straight_lines_between_the_corners():
    g = torch.Generator().manual_seed(3)
    codes = torch.randn(3, 5, generator=g, dtype=torch.float64)
    n = 3
    points = it.convex_combination(codes, it.triangle_weights(n, dtype=torch.float64))
    first_of_row = torch.tensor([r * (r + 1) // 2 for r in range(n + 1)])
    t = it.steps(n + 1, dtype=torch.float64)
    torch.testing.assert_close(points[first_of_row], it.lerp(codes[:1], codes[1:2], t)[0])      # left edge A -> B
    torch.testing.assert_close(points[first_of_row + torch.arange(n + 1)], it.lerp(codes[:1], codes[2:], t)[0])
    torch.testing.assert_close(points[4], codes.mean(dim=0))        # row 2, column 1: weights (1/3, 1/3, 1/3)
    with pytest.raises(ValueError, match="n"):
        it.triangle_weights(0)


def test_grid_is_bilinear_for_lerp():
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    grid = it.interpolate_grid(corners, 3, method="lerp")
    assert grid.shape == (3, 3, 2)
    # row i, column j -> (x = j / 2, y = i / 2)
    torch.testing.assert_close(grid[2, 1], torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(grid[1, 2], torch.tensor([1.0, 0.5]))


def test_interpolate_paths_and_one_vs_many():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    mixed = it.interpolate_paths(a, b, it.steps(4), method="lerp")
    assert mixed.shape == (2, 4, 5, 3)
    torch.testing.assert_close(mixed[:, 0], a)
    torch.testing.assert_close(mixed[:, -1], b)
    many = it.one_vs_many(a[0, 0], a[1], it.steps(3))
    assert many.shape == (5, 3, 3)
    torch.testing.assert_close(many[:, 0], a[0, 0].expand(5, 3))


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_iterated_paths_run_through_the_grid_diagonal(method):
    g = torch.Generator().manual_seed(0)
    z0, z1, via0, via1 = torch.randn(4, 3, 2, generator=g, dtype=torch.float64)
    t = it.steps(5, dtype=torch.float64)
    path = it.iterated_paths(z0, z1, via0, via1, t, method=method)
    assert path.shape == (3, 5, 2)
    torch.testing.assert_close(path[:, 0], z0)
    torch.testing.assert_close(path[:, -1], z1)
    for b in range(3):      # the diagonal of the grid with corners z0, via0 (top), via1, z1 (bottom)
        grid = it.interpolate_grid(torch.stack([z0[b], via0[b], via1[b], z1[b]]), 5, method=method)
        torch.testing.assert_close(path[b], grid[torch.arange(5), torch.arange(5)])
    if method == "lerp":    # the midpoint between the edge midpoints is the mean of the four codes
        torch.testing.assert_close(path[:, 2], (z0 + z1 + via0 + via1) / 4)


def test_validation_errors():
    with pytest.raises(ValueError, match="z1"):
        it.lerp(torch.zeros(2, 3), torch.zeros(2, 4), it.steps(3))
    with pytest.raises(KeyError, match="slerp"):
        it.interpolate("nope", torch.zeros(1, 2), torch.zeros(1, 2), it.steps(2))
    with pytest.raises(ValueError, match="steps"):
        it.steps(1)
    pairs = it.random_pairs(5, 100, generator=torch.Generator().manual_seed(0))
    assert (pairs[:, 0] != pairs[:, 1]).all() and pairs.max() < 5
