"""GMM diagnostics of starved components (fewer codes than dimensions) against hand computation, and
per-component sampling checked by the fitted mixture's own responsibilities."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from latentatlas.latent.samplers import GMM
from latentatlas.latent.samplers.gmm_diagnostics import extreme_components, starved_below

D = 8
SIZES = (60, 40, 3)     # the third cluster: 3 codes in 8 dimensions, a rank-2 covariance


def starved_codes(seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Three far-apart unit-variance clusters of SIZES codes in D dimensions: all codes (n, D), per cluster."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.stack([torch.zeros(D), torch.full((D,), 40.0), torch.full((D,), -40.0)]).double()
    parts = [c + torch.randn(s, D, generator=g, dtype=torch.float64) for c, s in zip(centers, SIZES)]
    return torch.cat(parts), parts


def fit(z: torch.Tensor, **params) -> GMM:
    return GMM(k=3, **params).fit(z, generator=torch.Generator().manual_seed(0))


def matched(m: GMM, parts: list[torch.Tensor]) -> list[int]:
    """The component whose mean is nearest each cluster's mean."""
    return [int(torch.cdist(p.mean(0, keepdim=True), m.means_).argmin()) for p in parts]


@pytest.mark.parametrize("reg_covar", [1e-3, 0.0])
def test_diagnostics_equal_hand_computation(reg_covar, caplog):
    z, parts = starved_codes()
    with caplog.at_level(logging.WARNING, logger="latentatlas.latent.samplers.gmm"):
        m = fit(z, reg_covar=reg_covar)
    comp = matched(m, parts)
    assert sorted(comp) == [0, 1, 2]
    info = m.describe()
    n_k = [info["components"][c]["n_k"] for c in comp]
    np.testing.assert_allclose(n_k, SIZES, rtol=0, atol=1e-6)
    small = comp[2]
    jitter = float(m.reg_added_[small])
    # reg_covar=0: the 3 codes span 2 of 8 directions, so Cholesky needs jitter; 1e-3 makes it positive definite
    assert (jitter > 0) == (reg_covar == 0) and int((m.reg_added_ > 0).sum()) == (reg_covar == 0)
    added = reg_covar + jitter
    mean_variance = np.trace(np.cov(parts[2].numpy().T, bias=True)) / D + added
    share = added / mean_variance
    assert info["components"][small]["reg_share"] == pytest.approx(share, rel=1e-6)
    assert info["components"][small]["jitter"] == jitter
    big_share = reg_covar / (np.trace(np.cov(parts[0].numpy().T, bias=True)) / D + reg_covar)
    assert info["components"][comp[0]]["reg_share"] == pytest.approx(big_share, rel=1e-6, abs=1e-15)
    assert info["n_starved"] == 1 and info["starved_below"] == D
    assert info["n_k_min"] == pytest.approx(3.0, abs=1e-6) and info["n_k_median"] == pytest.approx(40.0, abs=1e-6)
    assert info["starved_reg_share_mean"] == pytest.approx(share, rel=1e-6)
    assert info["starved_unspanned_mean"] == pytest.approx(D - 2, abs=1e-6)   # 3 codes span 2 of 8 directions
    if reg_covar:   # ... and in the other 6 the variance is reg_covar alone
        eigen = torch.linalg.eigvalsh(m.covariances_[small])
        assert int(torch.isclose(eigen, torch.tensor(reg_covar, dtype=eigen.dtype), rtol=1e-6).sum()) == D - 2
    assert info["n_starved_jittered"] == (reg_covar == 0) and info["starved_jitter_max"] == jitter
    expected = (f"1 of 3 components hold fewer codes than the {D} latent dimensions (smallest 3.0); their "
                f"covariances are set by the regularisation (reg_covar={reg_covar:g}: on average "
                f"{100 * share:.1f} % of the trace, and all of the variance in the 6 of {D} directions their "
                "codes do not span")
    expected += f"; 1 of them needed extra jitter up to {jitter:.3g})" if reg_covar == 0 else ")"
    assert info["warnings"] == [expected]
    assert any(expected in r.getMessage() for r in caplog.records)


def test_a_healthy_mixture_has_no_starved_component_and_no_warning(caplog):
    z, parts = starved_codes()
    healthy = torch.cat(parts[:2])
    with caplog.at_level(logging.WARNING, logger="latentatlas.latent.samplers.gmm"):
        m = GMM(k=2).fit(healthy, generator=torch.Generator().manual_seed(0))
    info = m.describe()
    assert info["n_starved"] == 0 and "warnings" not in info and "starved_reg_share_mean" not in info
    assert sorted(round(c["n_k"], 6) for c in info["components"]) == [40.0, 60.0]
    assert not caplog.records


def test_diag_and_tied_count_what_starves_them():
    z, _ = starved_codes()
    one_code = torch.cat([z, torch.full((1, D), 500.0, dtype=torch.float64)])   # a fourth cluster of one code
    diag = GMM(k=4, covariance="diag", reg_covar=1e-3).fit(one_code, generator=torch.Generator().manual_seed(0))
    diag = diag.describe()   # one code: its variances are reg_covar alone
    assert diag["starved_below"] == starved_below("diag", D) == 2 and diag["n_starved"] == 1
    assert diag["n_k_min"] == pytest.approx(1.0, abs=1e-6)
    assert diag["starved_reg_share_mean"] == pytest.approx(1.0, abs=1e-5)
    assert "fewer than 2 codes (smallest 1.0)" in diag["warnings"][0]
    tied = GMM(k=3, covariance="tied").fit(z, generator=torch.Generator().manual_seed(0)).describe()
    assert tied["n_starved"] == 0 and "warnings" not in tied


def test_component_draws_belong_to_the_named_component():
    z, parts = starved_codes()
    m = fit(z, reg_covar=1e-3)
    g = torch.Generator().manual_seed(1)
    for c in matched(m, parts):
        resp = m.predict_proba(m.sample(200, generator=g, component=c))
        assert resp[:, c].min() > 0.999, c


def test_extreme_components_are_the_most_then_the_least_populated():
    counts = torch.tensor([5.0, 50.0, 1.0, 20.0, 30.0, 2.0])
    assert extreme_components(counts, 2) == [1, 4, 5, 2]
    assert extreme_components(counts, 3) == [1, 4, 3, 0, 5, 2]
    with pytest.raises(ValueError, match="per_end"):
        extreme_components(counts, 0)


def config_gmm_params() -> dict:
    """The hyperparameters of the GMM in configs/celeba64-z256-k500.yaml."""
    from latentatlas.config import load
    from latentatlas.latent.samplers import build_sampler

    config = load(Path(__file__).resolve().parents[3] / "configs" / "celeba64-z256-k500.yaml")
    spec = next(s for s in config.sample.samplers if s.startswith("gmm"))
    return build_sampler(spec).get_params()


def test_the_configs_regularisation_generalises_where_the_default_memorises():
    """A small analogue of k=500 on 8,000 256-d codes: 16 codes per component in 64 dimensions, 32 of them
    active (unit variance) and 32 nearly constant (variance 1e-3), like a trained VAE's codes."""
    params = config_gmm_params()
    assert params["k"] == 500 and params["covariance"] == "full" and params["reg_covar"] == 0.1
    scale = torch.cat([torch.ones(32), torch.full((32,), 1e-3 ** 0.5)]).double()
    z = torch.randn(800, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * scale
    train, held_out = z[:400], z[400:]
    fits = {reg: GMM(**{**params, "k": 25, "reg_covar": reg}).fit(train, generator=torch.Generator().manual_seed(0))
            for reg in (0.0, 1e-6, 1e-3, 1e-2, params["reg_covar"])}
    score = {reg: (m.score(train), m.score(held_out)) for reg, m in fits.items()}
    # found: without regularisation Cholesky needs jitter; scikit-learn's 1e-6 needs none, yet memorises
    assert int(fits[0.0].describe()["n_jittered"]) > 0
    assert all(int((m.reg_added_ > 0).sum()) == 0 for reg, m in fits.items() if reg > 0)
    assert score[1e-6][0] - score[1e-6][1] > 1e5
    config_train, config_held_out = score[params["reg_covar"]]
    assert config_train - config_held_out < 100 and config_held_out > score[1e-6][1] + 1e5
    assert config_held_out > max(score[1e-3][1], score[1e-2][1])    # too small a regularisation costs more
    for m in fits.values():
        assert m.describe()["n_starved"] == 25 and m.describe()["starved_unspanned_mean"] == pytest.approx(64 + 1 - 16)
