"""Lineage (derive, children, the family tree) and the notes file (dated notes, tags)."""

import logging
import threading

import pytest

from latentatlas.cli import main
from latentatlas.runs.lineage import children, derive_config, tree_lines
from latentatlas.runs.notes import add_note, read_notes, run_tags


def test_derive_config_records_the_parent_and_applies_changes(make_run):
    parent = make_run("base", model={"latent_dim": 8}, seed=3)
    config = derive_config(parent, ["model.kl_weight=4", "train.epochs=2"], name="kl4")
    assert (config.name, config.parent, config.runs_dir) == ("kl4", "base", str(parent.path.parent))
    assert config.model.kl_weight == 4.0 and config.model.latent_dim == 8 and config.seed == 3
    assert derive_config(parent).name is None                        # a fresh default name, not the parent's
    with pytest.raises(ValueError, match="--set parent: a derived run's parent is 'base'"):
        derive_config(parent, ["parent=other"])
    with pytest.raises(ValueError, match="unknown key"):
        derive_config(parent, ["model.kl_wieght=4"])


def test_cli_derive_refuses_bad_changes_in_one_line(make_run, capsys):
    parent = make_run("base")
    assert main(["derive", str(parent.path), "--set", "train.epochs=0", "--train-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.epochs: expected an int >= 1, got 0" in err
    assert [p.name for p in make_run.runs_dir.iterdir()] == ["base"]          # nothing created


def test_children_and_tree_show_what_each_run_changed(make_run):
    root = make_run("root")
    make_run("kl4", parent="root", model={"kl_weight": 4.0})
    make_run("kl4-z8", parent="kl4", model={"kl_weight": 4.0, "latent_dim": 8})
    make_run("seed1", parent="root", seed=1)
    make_run("lonely")
    assert sorted(r.name for r in children(root)) == ["kl4", "seed1"]
    lines = tree_lines(make_run.runs_dir)
    assert lines == ["root",
                     "├── kl4  (model.kl_weight: 1 -> 4)",
                     "│   └── kl4-z8  (model.latent_dim: 16 -> 8)",
                     "└── seed1  (seed: 0 -> 1)",
                     "lonely"]


def test_a_damaged_metrics_file_leaves_the_tree_whole(make_run):
    make_run("root")
    child = make_run("child", parent="root", seed=1)
    child.metrics_path.write_text("[1, 2]")                       # not a mapping of sections
    assert tree_lines(make_run.runs_dir) == ["root", "└── child  (not compared with its parent: ValueError)"]


def test_notes_are_dated_lines_and_tags_replay(make_run, capsys):
    run = make_run("a")
    add_note(run, "looked at the samples of gmm:k=10", "looked-at")
    assert main(["runs", "note", str(run.path), "KL weight 4 blurs the digits", "--kind", "concluded"]) == 0
    assert main(["runs", "tag", str(run.path), "baseline", "mnist"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "baseline mnist"
    assert main(["runs", "tag", str(run.path), "mnist", "--remove"]) == 0
    notes = read_notes(run)
    assert [n["kind"] for n in notes] == ["looked-at", "concluded", "tag", "tag", "untag"]
    assert notes[1]["text"] == "KL weight 4 blurs the digits" and notes[0]["date"][:2] == "20"
    assert run_tags(run) == ["baseline"]
    assert main(["runs", "note", str(run.path), "  "]) == 2
    assert "text: expected the note's text" in capsys.readouterr().err
    assert main(["runs", "note", str(run.path), "x", "--kind", "thought"]) == 2
    assert "kind: expected one of 'note', 'looked-at', 'concluded', got 'thought'" in capsys.readouterr().err
    assert main(["runs", "tag", str(run.path), "two words"]) == 2
    assert "tag: expected letters" in capsys.readouterr().err
    assert len(read_notes(run)) == 5                                   # refused input wrote nothing


def test_concurrent_notes_are_all_kept(make_run):
    run = make_run("a")
    threads = [threading.Thread(target=lambda i=i: [add_note(run, f"note {i}-{j} " + "x" * 200) for j in range(20)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    texts = [n["text"] for n in read_notes(run)]
    assert len(texts) == 80 and len(set(texts)) == 80


def test_a_parent_not_in_the_runs_folder_is_warned_of_when_the_run_is_made(make_run, caplog):
    with caplog.at_level(logging.WARNING, logger="latentatlas.runs.store"):
        make_run("base")
        make_run("child", parent="base")
        assert "parent" not in caplog.text
        make_run("orphan", parent="nosuchrun")
    assert "parent: no run 'nosuchrun' in" in caplog.text
