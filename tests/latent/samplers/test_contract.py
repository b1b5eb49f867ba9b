"""Contract tests run over every registered sampler of code vectors (grid samplers: test_grid.py)."""

from __future__ import annotations

import json

import pytest
import torch

from latentatlas.latent.samplers import SAMPLERS, NotFittedError, build_sampler, load_sampler
from tests.latent.samplers.small import small

NAMES = [name for name in SAMPLERS.names() if SAMPLERS.get(name).code_kind == "continuous"]


def codes(n: int = 120, d: int = 3, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0] * d, [4.0] * d])
    return (torch.randn(n, d, generator=g) + centers[torch.arange(n) % 2]).to(dtype)


def test_registry_lists_the_issue_samplers():
    assert set(NAMES) >= {"prior", "gaussian", "gmm", "kde", "path", "simplex"}


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_use_before_fit_raises(name):
    s = small(name)
    assert not s.is_fitted
    with pytest.raises(NotFittedError, match="not fitted"):
        s.sample(3)
    with pytest.raises(NotFittedError):
        s.describe()
    assert s.fit(codes()) is s and s.is_fitted


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_sample_shape_dtype_device_and_reproducible(name, dtype):
    s = small(name).fit(codes(dtype=dtype))
    a = s.sample(25, generator=torch.Generator().manual_seed(3))
    b = s.sample(25, generator=torch.Generator().manual_seed(3))
    c = s.sample(25, generator=torch.Generator().manual_seed(4))
    assert a.shape == (25, 3) and a.dtype == dtype and a.device == torch.device("cpu")
    assert torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert s.sample(0).shape == (0, 3)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    s = small(name).fit(codes())
    path = s.save(tmp_path / "sampler.pt")
    torch.load(path, weights_only=True)  # plain data
    t = load_sampler(path)
    assert type(t) is type(s) and t.get_params() == s.get_params()
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(t.sample(30, generator=g()), s.sample(30, generator=g()))
    try:
        expected = s.score_samples(codes()[:10])
    except NotImplementedError:
        return
    assert torch.allclose(t.score_samples(codes()[:10]), expected)


@pytest.mark.parametrize("name", NAMES)
def test_invalid_codes_are_rejected(name):
    s = small(name)
    bad = codes()
    bad[5, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        s.fit(bad)
    with pytest.raises(ValueError, match="2-D"):
        s.fit(codes()[:, 0])
    with pytest.raises(TypeError, match="torch.Tensor or NumPy array"):
        s.fit(codes().tolist())
    with pytest.raises(ValueError, match="rows"):
        s.fit(codes()[:0])
    s.fit(codes())
    with pytest.raises(ValueError, match="3 columns"):
        try:
            s.score_samples(codes(d=4))
        except NotImplementedError:
            raise ValueError("3 columns (no density)")
    with pytest.raises(ValueError, match="n"):
        s.sample(-1)


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip_describe_and_unknown_parameter(name):
    s = small(name)
    assert build_sampler(s.spec).get_params() == s.get_params()
    info = s.fit(codes()).describe()
    assert info["sampler"] == name and info["dim"] == 3
    json.dumps(info)
    with pytest.raises(ValueError, match="unknown hyperparameter.*bogus.*valid"):
        build_sampler(f"{name}:bogus=1")


def test_build_sampler_errors():
    with pytest.raises(ValueError, match="unknown sampler 'nope'.*gmm"):
        build_sampler("nope")
    with pytest.raises(ValueError, match="covariance.*'full'.*'weird'"):
        build_sampler("gmm:covariance=weird")
    assert build_sampler({"name": "gmm", "k": 5}).k == 5
    assert build_sampler("gmm:k=50,covariance=diag").get_params()["covariance"] == "diag"
    with pytest.raises(ValueError, match="name"):
        build_sampler({"k": 5})
    with pytest.raises(FileNotFoundError):
        load_sampler("/nonexistent/sampler.pt")


@pytest.mark.parametrize("name", NAMES)
def test_numpy_codes_fit_and_score_as_the_same_tensor(name):
    z = codes(dtype=torch.float64)
    a = small(name).fit(z, generator=torch.Generator().manual_seed(0))
    b = small(name).fit(z.numpy(), generator=torch.Generator().manual_seed(0))
    draw_a = a.sample(7, generator=torch.Generator().manual_seed(1))
    draw_b = b.sample(7, generator=torch.Generator().manual_seed(1))
    assert isinstance(draw_b, torch.Tensor) and draw_b.dtype == torch.float64
    torch.testing.assert_close(draw_b, draw_a)
    try:
        torch.testing.assert_close(b.score_samples(z[:5].numpy()), a.score_samples(z[:5]))
    except NotImplementedError:          # samplers without a density
        pass
