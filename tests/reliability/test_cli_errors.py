"""The CLI's error boundary: every expected failure is one line naming the file or parameter with exit
code 2, a bug one line with exit code 1 (the traceback behind -v), and a bad run name writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentatlas.runs import pipeline
from latentatlas.training.precision import resolve_precision

from .conftest import error_lines, ring_config, subprocess_env, write_config


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _one_error(err: str, *words: str) -> str:
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("latentatlas: error: "), err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp/absolute", "a/b", "..", ".hidden", "x" * 101, "sp ace"])
def test_a_bad_run_name_is_refused_before_anything_is_written(tmp_path, cli, name):
    config = write_config(tmp_path, ring_config(tmp_path / "runs"))
    before = _files(tmp_path)
    code, _, err = cli("train", config, "--set", f"name={name}")
    assert code == 2
    _one_error(err, "name: expected one folder name", repr(name))
    assert _files(tmp_path) == before


def test_a_whole_run_writes_only_inside_its_folder_and_the_cache(finished_run):
    root = finished_run.parents[1]
    assert sorted(p.name for p in root.iterdir()) == ["cache", "runs"]
    assert [p.name for p in (root / "runs").iterdir()] == [finished_run.name]


def test_a_run_name_cannot_escape_runs_dir_from_the_library(tmp_path):
    from latentatlas.config import RunConfig
    from latentatlas.runs.store import Run

    with pytest.raises(ValueError, match="name: expected one folder name"):
        Run.create(RunConfig(name="../outside", runs_dir=str(tmp_path / "runs")))
    assert not (tmp_path / "outside").exists()


@pytest.mark.parametrize("text, words", [
    ("train: {epochs: 2\n", ["config", "expected YAML", "line 2"]),
    ("train:\n  epochs: [1,\n", ["config", "expected YAML"]),
    ("- just\n- a list\n", ["config", "expected a mapping"]),
    ("\udcff", ["config", "expected YAML"]),
])
def test_a_config_file_that_is_not_valid_yaml(tmp_path, cli, text, words):
    config = tmp_path / "bad.yaml"
    config.write_bytes(text.encode("utf-8", "surrogateescape"))
    code, _, err = cli("train", config)
    assert code == 2
    _one_error(err, *words, str(config))


@pytest.mark.parametrize("override, words", [
    ("train.lr=[1,", ["--set train.lr", "expected a YAML value"]),
    ("train.epochs={", ["--set train.epochs"]),
    ("train.lr=fast", ["train.lr", "expected a number", "'fast'"]),
    ("train.epochs=two", ["train.epochs", "expected an int"]),
    ("model.latent_dim=-1", ["model.latent_dim", "expected an int >= 1"]),
    ("train.lr=nan", ["train.lr", "finite"]),
    ("nosuchkey=1", ["unknown key(s) ['nosuchkey']"]),
    ("=1", ["--set", "key.path=value"]),
    ("sample.samplers=[gmm:k=[]", ["--set sample.samplers"]),
    ("sample.samplers=[5]", ["spec", "5"]),
    ("sample.samplers=['gmm:k=zero']", ["k", "'zero'"]),
    ("sample.samplers=['gmm:k=0']", ["sampler 'gmm:k=0': k: expected an int >= 1, got 0"]),
    ("sample.samplers=['gmm:k=5,k=6']", ["'gmm:k=5,k=6'", "key 'k' given twice"]),
    ("train.device=cuda:63", ["train.device", "'cuda:63' requested"]),     # no folder for a missing GPU
    ("data.val_fraction=0.95", ["data.val_fraction + data.test_fraction: expected a sum below 1"]),
    ("data.test_fraction=1", ["data.test_fraction: expected a fraction in [0, 1), got 1"]),
    ("data.test_fraction=0", ["evaluate.split: the 'test' split of ring holds 0 of its 300 images",
                              "data.test_fraction=0", "need at least 2"]),             # before training, not after
    ("evaluate.split=tset", ["evaluate.split: expected one of 'train', 'val', 'test', got 'tset'"]),
    ("data.name=MNIST", ["data.name: expected one of", "mnist", "got 'MNIST'"]),
    ("evaluate.n_real=0", ["evaluate.n_real: expected an int >= 2, got 0"]),
    ("train.checkpoint_overhead=0", ["train.checkpoint_overhead: expected a finite number in (0, 1] or None, got 0"]),
    ("train.checkpoint_overhead=1.5", ["train.checkpoint_overhead", "(0, 1]", "got 1.5"]),
])
def test_a_bad_override_is_one_line_naming_it(tmp_path, cli, override, words):
    config = write_config(tmp_path, ring_config(tmp_path / "runs"))
    code, _, err = cli("train", config, "--set", override)
    assert code == 2
    _one_error(err, *words)
    assert not (tmp_path / "runs").exists()


def test_yaml_1_1_floats_in_a_config_file_are_numbers(tmp_path, cli):
    from latentatlas import config as config_mod

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-4\n")   # YAML 1.1 reads 1e-4 as a string
    assert config_mod.load(path).train.lr == 1e-4


@pytest.mark.parametrize("content, words", [
    (b"", ["an empty file"]),
    (b"PK\x03\x04truncated", ["a damaged archive"]),
    (b"plain text, not an archive", ["not a zip archive"]),
    ("npy", ["a single .npy array"]),
])
def test_evaluate_on_a_file_that_is_not_a_samples_npz(tmp_path, cli, content, words):
    path = tmp_path / "samples.npz"
    if content == "npy":
        with open(path, "wb") as fh:
            np.save(fh, np.zeros((4, 2, 2, 1), np.uint8))
    else:
        path.write_bytes(content)
    code, _, err = cli("evaluate", path, "--ref", "ring:test")
    assert code == 2
    line = _one_error(err, str(path), *words)
    assert "allow_pickle" not in line


def test_samples_saved_channels_first_are_named_with_the_layout_to_save(tmp_path, cli):
    path = tmp_path / "nchw.npz"
    np.savez(path, np.zeros((10, 1, 28, 28), np.uint8))
    code, _, err = cli("evaluate", path, "--ref", "ring:test")
    assert code == 2
    _one_error(err, f"samples {str(path)!r}", "expected channels last (N, H, W, C), got (10, 1, 28, 28)",
               "np.transpose(images, (0, 2, 3, 1))")


def test_evaluate_on_a_npy_file_by_name(tmp_path, cli):
    path = tmp_path / "samples.npy"
    np.save(path, np.zeros((4, 2, 1, 1), np.uint8))
    code, _, err = cli("evaluate", path, "--ref", "ring:test")
    assert code == 2
    _one_error(err, str(path), "a single .npy array")


@pytest.mark.parametrize("flags", [["--ref", "mnist:test"], ["--ref-root", "elsewhere"], ["--ref-set", "limit=5"]])
def test_evaluate_refuses_reference_flags_with_a_run_folder(run_copy, cli, flags):
    before = (run_copy / "metrics.json").read_bytes()
    code, _, err = cli("evaluate", run_copy, *flags)
    assert code == 2
    _one_error(err, flags[0], "its own test split", str(run_copy))
    assert (run_copy / "metrics.json").read_bytes() == before


def test_evaluate_scores_only_the_samplers_named(run_copy, cli):
    """After one new sampler, `evaluate RUN --sampler SPEC` scores its samples and leaves the others' scores."""
    before = json.loads((run_copy / "metrics.json").read_text())["evaluate"]
    code, out, _ = cli("evaluate", run_copy, "--sampler", "gaussian", "--json")
    assert code == 0 and set(json.loads(out)) == {"gaussian"}
    after = json.loads((run_copy / "metrics.json").read_text())["evaluate"]
    assert after["prior"] == before["prior"] and after["gaussian"]["frechet"] == before["gaussian"]["frechet"]
    code, _, err = cli("evaluate", run_copy, "--sampler", "gmm:k=9")
    assert code == 2
    _one_error(err, "samplers: no samples of 'gmm:k=9'", "expected one of gaussian, prior")


@pytest.mark.parametrize("args, words", [
    (["sample", "RUN", "--n", "0"], ["--n", "expected an int >= 1, got '0'"]),
    (["sample", "RUN", "--n", "-5"], ["--n", "expected an int >= 1"]),
    (["sample", "RUN", "--n", "many"], ["--n", "'many'"]),
    (["interpolate", "RUN", "--steps", "1"], ["--steps", "expected an int >= 2"]),
    (["interpolate", "RUN", "--pairs", "0"], ["--pairs"]),
    (["nosuchcommand"], ["invalid choice"]),
])
def test_bad_arguments_are_one_line(run_copy, cli, args, words):
    samples = sorted((run_copy / "samples").iterdir())
    with pytest.raises(SystemExit) as stop:
        cli(*[str(run_copy) if a == "RUN" else a for a in args])
    assert stop.value.code == 2
    _one_error(cli.capsys.readouterr().err, *words)
    assert sorted((run_copy / "samples").iterdir()) == samples


@pytest.mark.parametrize("args, words", [
    (["sample", "RUN", "--sampler", "gmn:k=5"], ["--sampler 'gmn:k=5'", "unknown sampler 'gmn'", "gmm"]),
    (["evaluate", "RUN", "--extractor", "inceptoin"], ["--extractor 'inceptoin'", "unknown feature extractor",
                                                       "inception"]),
    (["geometry", "RUN", "--maps", "pca,pcx"], ["--maps: expected names from pca, tsne", "got 'pcx'"]),
    (["geometry", "RUN", "--maps", "pca,umap"], ["--maps: umap needs an optional package",
                                                 "pip install 'latentatlas[umap]'"]),
    (["interpolate", "RUN", "--method", "bogus"], ["--method 'bogus'", "unknown interpolator 'bogus'", "slerp"]),
    (["attributes", "RUN", "--method", "bogus"], ["--method 'bogus'", "expected one of 'mean', 'balanced'"]),
    (["sample", "RUN", "--sampler", "gmm:k=5000"], ["sampler 'gmm:k=5000'", "k: expected at most the number of "
                                                    "codes"]),
])
def test_a_bad_option_value_is_named_by_its_option_before_any_work(run_copy, cli, args, words, monkeypatch):
    from latentatlas.latent import maps

    monkeypatch.setattr(maps, "available_methods", lambda: [m for m in maps.METHODS if m != "umap"])
    before = _files(run_copy)
    code, _, err = cli(*[str(run_copy) if a == "RUN" else a for a in args])
    assert code == 2
    _one_error(err, *words)
    assert _files(run_copy) == before


def test_a_zero_sample_count_is_refused_by_the_library_too(run_copy):
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n: expected an int >= 1"):
            pipeline.sample_stage(run_copy, ["prior"], n=n)


def test_an_unexpected_error_is_one_line_and_its_traceback_is_behind_v(run_copy, cli, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(pipeline, "encode_stage", broken)
    code, _, err = cli("encode", run_copy)
    assert code == 1
    lines = error_lines(err)
    assert lines == ["latentatlas: internal error: ZeroDivisionError: a bug (a bug: rerun with -v for the traceback "
                     "and report it with the output of `latentatlas env`)"]
    code, _, err = cli("-v", "encode", run_copy)
    assert code == 1 and "Traceback" in err and "ZeroDivisionError" in err


def test_an_expected_error_shows_its_traceback_with_v(tmp_path, cli):
    code, _, err = cli("-v", "encode", tmp_path)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("latentatlas: error:")


def test_env_reports_versions_device_and_git_revision(cli):
    code, out, _ = cli("env")
    env = json.loads(out)
    assert code == 0
    for key in ("latentatlas", "python", "torch", "numpy", "default_device", "cuda_available", "git_revision"):
        assert key in env, key
    assert env["default_device"] in ("cpu", "cuda", "mps") or env["default_device"].startswith("cuda")
    assert env["default_precision"] == resolve_precision("auto", torch.device(env["default_device"]))
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    if "model name" in info:                                             # Linux on x86: the CPU runs are made on
        assert re.search(rf"^model name\s*:\s*{re.escape(env['cpu'])}\s*$", info, re.M)


def test_version_is_the_installed_package_version(cli):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        cli("--version")
    assert stop.value.code == 0
    assert cli.capsys.readouterr().out.strip() == f"latentatlas {version('latentatlas')}"


@pytest.mark.parametrize("where", ["before the command", "after it"])
def test_v_shows_the_traceback_before_or_after_the_command(tmp_path, cli, where):
    code, _, err = cli(*(["-v", "encode", tmp_path] if where == "before the command" else ["encode", tmp_path, "-v"]))
    assert code == 2 and "Traceback" in err


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    """``latentatlas ... | head``: the output's reader closes the pipe; exit 141 as a shell reports SIGPIPE, and
    no error line."""
    read, write = os.pipe()
    os.close(read)
    try:
        child = subprocess.run([sys.executable, "-m", "latentatlas.cli", "env"], stdout=write, stderr=subprocess.PIPE,
                               env=subprocess_env(), timeout=120, text=True)
    finally:
        os.close(write)
    assert child.returncode == 141 and child.stderr == "", child.stderr


def test_a_run_folder_given_as_a_config_is_named_with_the_file_to_give(tmp_path, cli):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    code, _, err = cli("train", tmp_path, "--resume")
    assert code == 2
    _one_error(err, f"config: expected a YAML file, got the folder {str(tmp_path)!r}",
               f"(a run folder's config: {str(tmp_path / 'config.yaml')!r})")


def test_a_missing_reference_root_is_named_by_its_option(tmp_path, cli):
    samples = tmp_path / "s.npz"
    np.savez(samples, np.zeros((4, 8, 8, 1), dtype=np.uint8))
    code, _, err = cli("evaluate", samples, "--ref", "mnist:test", "--ref-root", tmp_path / "nope")
    assert code == 2
    _one_error(err, f"--ref-root: no such file or folder {str(tmp_path / 'nope')!r}")
    code, _, err = cli("evaluate", samples, "--ref", "mnst:test")
    assert code == 2
    _one_error(err, "ref: unknown dataset 'mnst' in 'mnst:test'; expected one of:", "mnist")


def test_a_runs_folder_that_cannot_be_made_is_named(tmp_path, cli):
    (tmp_path / "file").write_text("not a folder")
    config = write_config(tmp_path, ring_config(tmp_path / "file" / "runs"))
    code, _, err = cli("train", config)
    assert code == 2
    _one_error(err, f"runs_dir: cannot make the run folder {str(tmp_path / 'file' / 'runs' / 'r')!r}")
