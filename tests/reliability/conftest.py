"""Shared pieces of the reliability suite: one thread (tiny models run faster without thread hand-offs), a
tiny run config on the synthetic ring data, the CLI run in-process, and one finished run to damage."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from latentatlas import config as config_mod
from latentatlas.cli import main


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ring_config(runs_dir: Path, name: str = "r", **sections) -> dict:
    """A run of a tiny MLP VAE on 300 points of the ring data set: seconds for every stage."""
    values = {
        "name": name, "runs_dir": str(runs_dir), "seed": 0,
        "data": {"name": "ring", "options": {"n": 300}},
        "model": {"family": "vae", "latent_dim": 2, "architecture": "mlp", "width": 8, "likelihood": "gaussian"},
        "train": {"epochs": 2, "batch_size": 64, "progress": False, "device": "cpu"},
        "sample": {"samplers": ["prior", "gaussian"], "n": 16},
        "evaluate": {"metrics": ["frechet"], "extractor": "pixels"},
    }
    for section, changes in sections.items():
        values[section] = {**values[section], **changes} if isinstance(changes, dict) else changes
    return values


def write_config(folder: Path, values: dict, file_name: str = "run.yaml") -> Path:
    path = folder / file_name
    path.write_text(yaml.safe_dump(values))
    return path


class CLI:
    """``latentatlas ARGS`` in this process: exit code and what it printed."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys) -> CLI:
    return CLI(capsys)


def error_lines(err: str) -> list[str]:
    """The lines latentatlas itself printed (not log records); asserts there is no traceback."""
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("latentatlas:")]


def subprocess_env() -> dict[str, str]:
    """The environment for `python -m latentatlas.cli` in a child: this source tree, one thread."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A run with every stage done (train, encode, sample prior + gaussian, evaluate, report); copy it
    with :func:`copy_run` before changing it."""
    from latentatlas.runs import pipeline
    from latentatlas.runs.report import write_report

    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTATLAS_CACHE", str(root / "cache"))
        session = pipeline.train_session(config_mod.from_dict(ring_config(root / "runs")))
        pipeline.encode_stage(session)
        pipeline.sample_stage(session)
        pipeline.evaluate_stage(session)
        write_report(session.run)
    return session.run.path


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of the finished run."""
    return Path(shutil.copytree(finished_run, tmp_path / "runs" / finished_run.name))
