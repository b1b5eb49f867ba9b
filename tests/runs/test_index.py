"""`runs list`: one row per run folder, filtered and sorted, and never broken by a removed or damaged folder."""

import json
import os
import shutil

from latentatlas.cli import main
from latentatlas.runs.index import list_rows, list_table, summarize
from latentatlas.runs.notes import add_tags


def test_a_row_has_stages_headline_tags_date_and_parent(make_run):
    run = make_run("a", frechet={"prior": 30.0, "gmm_k-3": 20.0}, mse=0.02, parent="root", model={"latent_dim": 8})
    (run.samples_dir).mkdir()
    for name in ("prior", "gmm_k-3", "kde"):
        (run.samples_dir / f"{name}.npz").write_bytes(b"")
    run.update_metrics("geometry", {"active_units": 3})
    add_tags(run, ["baseline"])
    row = summarize(run)
    assert (row["family"], row["data"], row["latent_dim"], row["parent"]) == ("vae", "mnist", 8, "root")
    assert row["stages"] == {"train": "", "encode": "", "sample": "done", "evaluate": "2/3", "interpolate": "",
                             "attributes": "", "geometry": "done", "report": ""}
    assert row["score"] == 20.0 and row["sampler"] == "gmm:k=3" and row["headline"] == "FD 20 (gmm:k=3)"
    assert row["protocol"] == "classifier, test: 40 real / 64 generated"
    assert row["tags"] == ["baseline"] and row["date"][:2] == "20"
    terminal = list_table([row]).rows[0]
    assert "sample evaluate(2/3) geometry" in terminal


def test_filter_by_config_and_tag_and_sort_by_a_score(make_run):
    for name, fd, family in (("b", 30.0, "vae"), ("a", 10.0, "ae"), ("c", 20.0, "vae")):
        make_run(name, frechet={"prior": fd}, model={"family": family})
    add_tags(make_run("untested", model={"family": "vae"}), ["wip"])
    runs_dir = make_run.runs_dir
    assert [r["name"] for r in list_rows(runs_dir, sort="frechet")] == ["a", "c", "b", "untested"]
    assert [r["name"] for r in list_rows(runs_dir, sort="-evaluate.prior.frechet")] == ["b", "c", "a", "untested"]
    assert [r["name"] for r in list_rows(runs_dir, where=["model.family=vae"], sort="name")] == ["b", "c", "untested"]
    assert [r["name"] for r in list_rows(runs_dir, tags=["wip"])] == ["untested"]


def test_a_setting_left_to_auto_is_found_by_what_training_chose(make_run):
    for name, chosen in (("amx", "bf16"), ("laptop", "fp32")):
        make_run(name, train={"precision": "auto"}).update_metrics("train", {"precision": chosen})
    make_run("pinned", train={"precision": "bf16"})
    make_run("untrained", train={"precision": "auto"})
    runs_dir = make_run.runs_dir

    def found(where: str) -> list[str]:
        return [r["name"] for r in list_rows(runs_dir, where=[where], sort="name")]

    assert found("train.precision=bf16") == ["amx", "pinned"]
    assert found("train.precision=fp32") == ["laptop"]
    assert found("train.precision=auto") == ["amx", "laptop", "untrained"]


def test_bad_filters_are_one_line_errors(make_run, capsys):
    make_run("a", frechet={"prior": 30.0})
    runs_dir = str(make_run.runs_dir)
    assert main(["runs", "list", runs_dir, "--where", "model.famly=vae"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--where: unknown config key 'model.famly'" in err and "model.family" in err
    assert main(["runs", "list", runs_dir, "--sort", "evaluate.prior.recal"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--sort: no run has a score 'evaluate.prior.recal'" in err and "evaluate.prior.recall" in err
    assert main(["runs", "list", runs_dir, "--where", "novalue"]) == 2
    assert "--where: expected key=value" in capsys.readouterr().err
    for command in ("list", "tree"):
        assert main(["runs", command, runs_dir + "-typo"]) == 2
        assert f"FOLDER: no such folder '{runs_dir}-typo'" in capsys.readouterr().err


def test_removed_or_damaged_folders_never_break_the_list(make_run, capsys):
    make_run("parent", frechet={"prior": 30.0})
    make_run("child", parent="parent")
    broken = make_run("broken")
    broken.metrics_path.write_text("{not json")
    shutil.rmtree(make_run.runs_dir / "parent")
    (make_run.runs_dir / "half-removed").mkdir()                  # a folder without config.yaml is not a run
    assert main(["runs", "list", str(make_run.runs_dir), "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"child", "broken"}
    assert rows["child"]["parent"] == "parent" and rows["broken"]["error"].startswith("unreadable: ")
    assert "metrics.json" in rows["broken"]["error"]
    assert main(["runs", "tree", str(make_run.runs_dir)]) == 0
    assert "child  (parent 'parent' not found)" in capsys.readouterr().out.splitlines()
    assert main(["list", str(make_run.runs_dir)]) == 0                          # the `list` alias


def test_report_older_than_the_results_is_stale(make_run):
    run = make_run("a", frechet={"prior": 30.0})
    run.report_path.write_text("<html></html>")
    os.utime(run.report_path, (1, 1))
    assert summarize(run)["stages"]["report"] == "stale"
    os.utime(run.report_path)
    os.utime(run.metrics_path, (1, 1))
    assert summarize(run)["stages"]["report"] == "done"


def test_an_empty_list_is_a_line_for_people_and_a_header_for_scripts(tmp_path, capsys):
    empty = tmp_path / "runs"
    empty.mkdir()
    assert main(["runs", "list", str(empty)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no runs in" in captured.err
    assert main(["runs", "list", str(empty), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("run,family,data,latent")


def test_a_training_that_did_not_finish_is_unfinished_in_the_list_and_warned_of_in_the_report(make_run):
    """A Ctrl-C leaves checkpoints but no train section: the list, the report and encode must not pass it off as
    a finished training."""
    from latentatlas.runs.report import write_report

    run = make_run("stopped", train={"epochs": 30})
    run.checkpoints_dir.mkdir(parents=True)
    run.checkpoint_path("last").write_bytes(b"")
    run.history_path.write_text("".join(json.dumps({"epoch": k, "loss": 1.0}) + "\n" for k in range(1, 9)))
    assert summarize(run)["stages"]["train"] == "unfinished"
    assert "train(unfinished)" in list_table([summarize(run)]).rows[0]
    assert "did not finish: its weights are those of epoch 8 of 30" in write_report(run).read_text()
    run.update_metrics("train", {"epochs_run": 8})          # what a finished training (early stopping) writes
    assert summarize(run)["stages"]["train"] == "done" and run.unfinished_training() is None
    assert "did not finish" not in write_report(run).read_text()


def test_codes_older_than_the_model_and_samples_older_than_the_codes_are_stale(make_run):
    """Training resumed after encoding, or encoding again after sampling: the later stages' files were listed
    as done though they came from the earlier model or codes."""
    run = make_run("a", frechet={"prior": 30.0})
    for path in (run.checkpoint_path("last"), run.checkpoint_path("best"), run.latents_path,
                 run.samples_dir / "prior.npz"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    for age, path in enumerate([run.samples_dir / "prior.npz", run.latents_path, run.checkpoint_path("best")]):
        os.utime(path, (1000 - age * 100, 1000 - age * 100))         # written in order: model, codes, samples
    stages = summarize(run)["stages"]
    assert (stages["encode"], stages["sample"], stages["evaluate"]) == ("done", "done", "done")
    os.utime(run.latents_path, (2000, 2000))                           # encoded again after sampling
    stages = summarize(run)["stages"]
    assert (stages["encode"], stages["sample"], stages["evaluate"]) == ("done", "stale", "stale")
    os.utime(run.checkpoint_path("best"), (3000, 3000))                # ... and trained on after that
    assert summarize(run)["stages"]["encode"] == "stale"
