"""components: on a mixture whose training set repeats a few points (tiny components) next to broad clusters,
with identity features, low-variance components copy and the verdict says so; the findings' correlations are
those of the table; a resumed study scores the same mixture; the CLI runs it on a trained run."""

import json

import pytest
import torch

from latentatlas.cli import main
from latentatlas.runs.tables import fmt_number
from latentatlas.studies import Judge, StudyContext, load_settings, run_study
from latentatlas.studies.base import spearman

K = 12


def _toy_codes() -> dict[str, torch.Tensor]:
    """12 clusters 10 apart (sd 1) in 2-d; the training set samples six of them and holds one point of each of
    the other six repeated 30 times with noise 0.01 (near-duplicates); held-out codes come from all twelve."""
    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.stack(torch.meshgrid(torch.arange(4.), torch.arange(3.), indexing="ij"), -1).reshape(-1, 2)

    def fresh(n):
        return centres[torch.randint(0, K, (n,), generator=g)] + torch.randn(n, 2, generator=g)

    broad = [centres[i] + torch.randn(150, 2, generator=g) for i in range(6)]
    tiny = [centres[i] + torch.randn(1, 2, generator=g) + 0.01 * torch.randn(30, 2, generator=g) for i in range(6, K)]
    return {"train": torch.cat(broad + tiny), "val": fresh(500), "test": fresh(2000)}


def _context(folder) -> StudyContext:
    codes = _toy_codes()
    return StudyContext(name="toy", seed=0, folder=folder, codes=codes, judge=Judge(lambda x: x, codes["test"],
                                                                                    codes["train"]))


SETTINGS = [f"k={K}", "n_per=200"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    return folder, run_study("components", [_context(folder)], load_settings("components", overrides=SETTINGS))


def test_low_variance_components_copy_and_the_verdict_says_so(toy):
    _, result = toy
    rows = result.rows
    assert sorted(r["component"] for r in rows) == list(range(K))
    rho = spearman([r["variance"] for r in rows], [r["copy_fraction"] for r in rows])
    assert rho < -0.59           # 1.96 / sqrt(K - 1): significant at the 5 % level
    # the near-duplicate components are the smallest and copy nearly every draw; the broad ones do not
    tiny = [r for r in rows if r["variance"] < 1e-3]
    assert len(tiny) >= 3 and all(r["copy_fraction"] > 0.9 for r in tiny)
    assert all(r["copy_fraction"] < 0.2 for r in rows if r["variance"] > 0.5)
    copying = result.findings[0]
    assert copying.startswith("Low-variance components copy training images: Spearman rho(variance, copy fraction)")
    assert copying.endswith(": holds.")
    assert result.findings[3].startswith("Verdict: the claim is ")
    assert "supported" in result.findings[3] and "not supported" not in result.findings[3]


def test_findings_quote_the_correlations_of_the_table(toy):
    folder, result = toy
    table = json.loads((folder / "studies" / "components" / "study.json").read_text())["table"]
    column = {name: [row[i] for row in table["rows"]] for i, name in enumerate(table["header"])}
    assert column["variance"] == sorted(column["variance"])
    for line, value in zip(result.findings, ("copy fraction", "diversity", "precision")):
        rho = spearman(column["variance"], column[value])
        assert f"rho(variance, {value}) = {fmt_number(rho, 2)} over {K} components" in line


def test_a_resumed_study_scores_the_same_mixture(toy):
    folder, result = toy
    cells = folder / "studies" / "components" / "cells.jsonl"
    lines = cells.read_text().splitlines()
    cells.write_text("\n".join(lines[:K - 2]) + "\n")      # as if killed two components before the end
    again = run_study("components", [_context(folder)], load_settings("components", overrides=SETTINGS))
    assert again.rows == result.rows
    assert len(list((folder / "studies" / "components").glob("gmm-*.pt"))) == 1


def test_settings_are_checked():
    for bad in ("k=2", "covariance=tied", "n_per=1"):
        with pytest.raises(ValueError, match="components"):
            load_settings("components", overrides=[bad])
    with pytest.raises(ValueError, match=r"^components\.n_real: expected an int >= 2, got -5$"):   # every study's
        load_settings("components", overrides=["n_real=-5"])


def test_cli_on_a_trained_run(tiny_run, capsys):
    run = tiny_run
    assert main(["study", "components", str(run), "--set", "k=3", "--set", "n_per=16", "--set", "n_real=200"]) == 0
    out = capsys.readouterr().out
    folder = run / "studies" / "components"
    for name in ("study.json", "table.csv", "table.md", "summary.md", "components.png", "cells.jsonl"):
        assert (folder / name).is_file(), name
    assert "- Low-variance components copy training images:" in out and "- Verdict: the claim is" in out
    assert len((folder / "cells.jsonl").read_text().splitlines()) == 3
