"""Running a study: interrupted studies resume at the next cell with the same numbers, finished cells
survive a grid change but not a settings change, a torn line is recomputed, and the CLI writes only
inside the run folder."""

import json

import pytest

from latentatlas.cli import main
from latentatlas.studies import load_settings, run_study
from latentatlas.studies.gmm_k import GmmK

GRID = ["ks=[1,2,5]", "seeds=2", "n_samples=300"]


def _numbers(rows):
    return [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows]


def test_an_interrupted_study_resumes_at_the_next_cell_with_the_same_numbers(mixture_context, monkeypatch):
    settings = load_settings("gmm-k", overrides=GRID)
    calls = []
    original = GmmK.run_cell

    def interrupt_at_the_fourth(self, ctx, cell):
        calls.append(dict(cell))
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, ctx, cell)

    monkeypatch.setattr(GmmK, "run_cell", interrupt_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_study("gmm-k", [mixture_context], settings)
    cells_file = mixture_context.folder / "studies" / "gmm-k" / "cells.jsonl"
    assert len(cells_file.read_text().splitlines()) == 3
    calls.clear()
    resumed = run_study("gmm-k", [mixture_context], settings)
    assert calls == [{"k": 2, "seed": 1}, {"k": 5, "seed": 0}, {"k": 5, "seed": 1}]   # the unfinished cells
    monkeypatch.setattr(GmmK, "run_cell", original)
    fresh = run_study("gmm-k", [mixture_context], settings, fresh=True)
    assert _numbers(resumed.rows) == _numbers(fresh.rows)
    assert resumed.findings == fresh.findings


def test_a_grid_change_keeps_finished_cells_and_a_settings_change_does_not(mixture_context, monkeypatch):
    run_study("gmm-k", [mixture_context], load_settings("gmm-k", overrides=GRID))
    calls = []
    original = GmmK.run_cell
    monkeypatch.setattr(GmmK, "run_cell", lambda self, ctx, cell: calls.append(cell) or original(self, ctx, cell))
    run_study("gmm-k", [mixture_context], load_settings("gmm-k", overrides=["ks=[1,2,5,8]", "seeds=2",
                                                                               "n_samples=300"]))
    assert calls == [{"k": 8, "seed": 0}, {"k": 8, "seed": 1}]
    calls.clear()
    run_study("gmm-k", [mixture_context], load_settings("gmm-k", overrides=["ks=[1,2,5,8]", "seeds=2",
                                                                               "n_samples=400"]))
    assert len(calls) == 8
    records = (mixture_context.folder / "studies" / "gmm-k" / "cells.jsonl").read_text().splitlines()
    assert len(records) == 8                     # the file keeps the current cells only


def test_a_torn_last_line_is_recomputed(mixture_context):
    settings = load_settings("gmm-k", overrides=GRID)
    first = run_study("gmm-k", [mixture_context], settings)
    path = first.folder / "cells.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])    # a killed write
    again = run_study("gmm-k", [mixture_context], settings)
    assert _numbers(again.rows) == _numbers(first.rows)
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_the_cli_runs_a_study_inside_the_run_folder_and_the_report_shows_it(tiny_run, capsys):
    before = {p for p in tiny_run.parent.rglob("*") if "studies" not in p.parts}
    code = main(["study", "gmm-k", str(tiny_run), "--set", "ks=[1,2]", "--set", "seeds=1", "--set", "n_samples=64"])
    assert code == 0
    out = capsys.readouterr().out
    assert "BIC picks k=" in out and out.strip().endswith("summary.md")
    study = json.loads((tiny_run / "studies" / "gmm-k" / "study.json").read_text())
    assert study["runs"] == ["tiny"] and len(study["table"]["rows"]) == 2
    assert study["protocol"]["extractor"] == "classifier"
    after = {p for p in tiny_run.parent.rglob("*") if "studies" not in p.parts}
    assert after - before == set()                    # nothing new outside RUN/studies (report.html rewritten)
    report = (tiny_run / "report.html").read_text()
    assert "Study gmm-k" in report and "studies/gmm-k/gmm-k.png" in report
    assert study["findings"][0] in report.replace("&#x27;", "'")


@pytest.mark.parametrize("args, message", [
    (["study", "no-such-study", "RUN"], "unknown study 'no-such-study'; expected one of:"),
    (["study", "gmm-k", "RUN", "--set", "ks=[0]"], "gmm-k.ks: expected an int >= 1, got 0"),
    (["study", "gmm-k", "/no/such/run"], "/no/such/run"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_run, capsys, args, message):
    args = [str(tiny_run) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("latentatlas: error:") and message in err[-1]


def test_the_gallery_lists_every_study_of_a_runs_folder(tiny_run, tmp_path, capsys):
    assert main(["study", "gmm-k", str(tiny_run), "--set", "ks=[1,2]", "--set", "seeds=1",
                 "--set", "n_samples=64"]) == 0
    capsys.readouterr()
    study = json.loads((tiny_run / "studies" / "gmm-k" / "study.json").read_text())
    assert study["protocol"]["extractor"] == "classifier"      # also when every cell was resumed
    page = tmp_path / "gallery.html"
    assert main(["runs", "studies", str(tiny_run.parent), "--html", str(page), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "tiny,gmm-k,2," in out
    html = page.read_text()
    studies = sorted(p.name for p in (tiny_run / "studies").iterdir())       # other tests' studies too
    assert "Is the number of GMM components" in html
    assert html.count("<h2>") == len(studies) and html.count("data:image/png;base64,") >= len(studies)


def test_a_runs_folder_without_studies_says_so_and_writes_no_page(tmp_path, capsys):
    empty = tmp_path / "runs"
    empty.mkdir()
    page = tmp_path / "gallery.html"
    assert main(["runs", "studies", str(empty), "--html", str(page)]) == 0
    captured = capsys.readouterr()
    assert "no studies in" in captured.err and "latentatlas study NAME RUN" in captured.err
    assert captured.out == "" and not page.exists()


def test_the_study_help_names_every_registered_study():
    """The parser lists the studies by hand (building it imports no study); it must not fall behind."""
    from latentatlas.cli import build_parser
    from latentatlas.studies import STUDIES

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    names = next(a for a in sub.choices["study"]._actions if a.dest == "name").help
    assert set(names.removeprefix("the study: ").split(", ")) == set(STUDIES.names())
