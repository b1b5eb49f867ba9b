"""gmm-k on a known 5-component mixture: held-out likelihood and BIC pick k = 5; findings agree with the
table; settings are validated."""

import re
from pathlib import Path

import pytest

from latentatlas.studies import STUDIES, load_settings, run_study
from latentatlas.studies.gmm_k import GmmK


@pytest.fixture
def result(mixture_context):
    settings = load_settings("gmm-k", overrides=["ks=[1,2,3,5,8,12]", "seeds=2", "n_samples=800"])
    return run_study("gmm-k", [mixture_context], settings)


def test_heldout_likelihood_and_bic_pick_the_true_number_of_components(result):
    picks = GmmK().picks(result.rows)
    assert picks["held-out likelihood"]["k"] == 5
    assert picks["BIC"]["k"] == 5
    assert len(result.rows) == 12 and {r["k"] for r in result.rows} == {1, 2, 3, 5, 8, 12}


def test_findings_name_the_k_the_table_marks(result):
    header = result.table.header
    picked = {row[0]: row[header.index("picked by")] for row in result.table.rows}
    for line in result.findings[:3]:
        name, k = re.match(r"(.+?) picks k=(\d+)", line).groups()
        assert name in picked[int(k)]
    by_bic = min(result.table.rows, key=lambda r: r[header.index("BIC")])[0]
    assert "BIC" in picked[by_bic]


def test_outputs_are_written(result):
    for name in ("config.yaml", "cells.jsonl", "table.csv", "table.md", "study.json", "summary.md", "gmm-k.png"):
        assert (result.folder / name).is_file(), name
    lines = (result.folder / "table.csv").read_text().splitlines()
    assert lines[0].startswith("k,Fréchet distance") and sum(line[:1].isdigit() for line in lines) == 6


@pytest.mark.parametrize("override, message", [
    ("ks=[0,5]", "gmm-k.ks: expected an int >= 1, got 0"),
    ("ks=[]", "gmm-k.ks: expected a non-empty list"),
    ("seeds=0", "gmm-k.seeds: expected an int >= 1, got 0"),
    ("covariance=round", "gmm-k.covariance: expected one of"),
    ("bandwidth=3", "gmm-k: unknown key(s) ['bandwidth']"),
])
def test_bad_settings_are_one_clear_error(override, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings("gmm-k", overrides=[override])


def test_a_config_file_of_another_study_is_refused(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text("study: kde-bandwidth\nsettings: {}\n")
    with pytest.raises(ValueError, match="expected a config of study 'gmm-k'"):
        load_settings("gmm-k", path)


@pytest.mark.parametrize("name", STUDIES.names())
def test_every_study_ships_a_config_that_holds_its_defaults(name):
    """configs/studies/NAME.yaml reproduces the committed full-MNIST results, which ran on the defaults."""
    path = Path(__file__).resolve().parents[2] / "configs" / "studies" / f"{name}.yaml"
    assert load_settings(name, path) == STUDIES.get(name).Settings()


def test_one_seed_has_no_spread_to_call_a_gap_beyond():
    """With seeds=1 a pick's gap to the best-sample k read 'beyond the seed-to-seed spread' (an sd of 0)."""
    rows = [{"k": k, "seed": 0, "frechet": fd, "precision": 0.5, "recall": 0.5, "bic": bic, "aic": bic,
             "heldout_loglik": -bic}
            for k, fd, bic in ((1, 20.0, 5.0), (5, 10.0, 9.0))]
    findings = GmmK().findings(rows)
    assert any("one seed, so no spread to set it against" in line for line in findings)
    assert not any("seed-to-seed spread" in line for line in findings)
    two_seeds = rows + [{**row, "seed": 1, "frechet": row["frechet"] + 0.1} for row in rows]
    assert any("beyond the seed-to-seed spread" in line for line in GmmK().findings(two_seeds))
