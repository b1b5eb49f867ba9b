"""Model selection of the gmm sampler: what it tells the user while it chooses k."""

import logging

import torch

from latentatlas.latent.samplers.gmm_select import select_k


def test_selection_says_its_choice_in_one_line_and_not_the_warnings_of_candidates_it_drops(caplog):
    """k=auto on the demo's codes logged a dict a k, and a 'components hold fewer codes' warning of the k=100
    candidate that BIC then dropped."""
    z = torch.randn(60, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with caplog.at_level(logging.INFO, logger="latentatlas"):
        best, curve = select_k(z, [1, 20], val_fraction=0.0, reg_covar=0.1,
                               generator=torch.Generator().manual_seed(0))
    assert best.n_components_ == 1 and [row["k"] for row in curve] == [1, 20]
    assert [r.getMessage() for r in caplog.records] == ["gmm: bic picks k=1 of [1, 20]"]
    with caplog.at_level(logging.INFO, logger="latentatlas"):
        select_k(z, [20], val_fraction=0.0, reg_covar=0.1, generator=torch.Generator().manual_seed(0))
    assert any("fewer codes than the 4 latent dimensions" in r.getMessage() for r in caplog.records)   # kept: said
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="latentatlas"):           # -v: there, as debug lines
        select_k(z, [1, 20], val_fraction=0.0, reg_covar=0.1, generator=torch.Generator().manual_seed(0))
    assert {r.levelname for r in caplog.records if "fewer codes" in r.getMessage()} == {"DEBUG"}
