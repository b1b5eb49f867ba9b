"""Fixtures of the study tests: contexts over synthetic codes (features = the codes themselves) and a tiny
trained run made through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from latentatlas.studies import Judge, StudyContext

TINY_RUN = {
    "name": "tiny", "seed": 0, "data": {"name": "mnist", "limit": 600},
    "model": {"family": "vae", "latent_dim": 4, "width": 8},
    "train": {"epochs": 2, "batch_size": 64, "progress": False},
    "sample": {"samplers": ["prior"], "n": 64}, "evaluate": {"metrics": ["frechet"], "n_real": 1000},
}
MIXTURE_MEANS = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0], [3.0, 11.0]])


def mixture(n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws (n, 2) of an equal-weight mixture of 5 unit Gaussians at MIXTURE_MEANS."""
    which = torch.randint(0, len(MIXTURE_MEANS), (n,), generator=generator)
    return MIXTURE_MEANS[which] + torch.randn(n, 2, generator=generator)


def array_context(folder: Path, codes: dict[str, torch.Tensor], *, seed: int = 0, name: str = "toy") -> StudyContext:
    """A context whose 'images' are the codes and whose features are the images (identity)."""
    judge = Judge(lambda x: x, codes["test"], codes["train"])
    return StudyContext(name=name, seed=seed, folder=folder, codes=codes, judge=judge)


@pytest.fixture
def mixture_context(tmp_path) -> StudyContext:
    g = torch.Generator().manual_seed(0)
    codes = {split: mixture(n, g) for split, n in (("train", 2000), ("val", 1000), ("test", 1000))}
    return array_context(tmp_path / "toy", codes)


def train_run(runs_dir: Path, config: dict | None = None, **top) -> Path:
    """The run folder that `latentatlas run` makes in ``runs_dir`` from ``config`` (default TINY_RUN) with the
    top-level keys ``top`` replaced (e.g. name=, seed=)."""
    from latentatlas.cli import main

    config = {**(config or TINY_RUN), **top}
    path = runs_dir / f"{config['name']}.yaml"
    path.write_text(yaml.safe_dump({**config, "runs_dir": str(runs_dir)}))
    assert main(["run", str(path)]) == 0
    return runs_dir / config["name"]


@pytest.fixture(scope="session")
def run_maker():
    """train_run(runs_dir, config=None, **top): a trained tiny run for tests that need their own."""
    return train_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A 2-epoch VAE on 600 embedded digits, trained, encoded, sampled and evaluated by `latentatlas run`."""
    return train_run(tmp_path_factory.mktemp("study-runs"))


def run_on(name: str, run: Path, settings: list[str], *overrides: str, fresh: bool = False,
           ctx: StudyContext | None = None):
    """Run study ``name`` with ``settings`` plus ``overrides`` on a new context of ``run`` (or on ``ctx``, its
    Judge already built). -> (the study's result, the context)."""
    from latentatlas.runs.session import as_session
    from latentatlas.studies import load_settings, run_study

    resolved = load_settings(name, overrides=[*settings, *overrides])
    ctx = ctx or StudyContext.from_session(as_session(run), n_real=resolved.n_real)
    return run_study(name, [ctx], resolved, fresh=fresh), ctx
