"""bench/faces_celeba.py's ``--samplers MODEL=SPEC;SPEC``: parsed per model, bad values refused in one line."""

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def faces(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))   # the script imports its sibling modules (budget, timing)
    spec = importlib.util.spec_from_file_location("faces_celeba", BENCH / "faces_celeba.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    for name in ("budget", "timing"):
        sys.modules.pop(name, None)


def test_sampler_overrides_split_per_model(faces):
    parser = argparse.ArgumentParser()
    out = faces.sampler_overrides(parser, ["vae=prior;empirical", "ae=gmm:k=50,covariance=full;ddpm"])
    assert out == {"vae": ["prior", "empirical"], "ae": ["gmm:k=50,covariance=full", "ddpm"]}


@pytest.mark.parametrize("value", ["gan=prior", "vae=", "prior;empirical"])
def test_a_bad_sampler_override_is_refused(faces, value, capsys):
    parser = argparse.ArgumentParser(prog="faces_celeba.py")
    with pytest.raises(SystemExit) as exit_info:
        faces.sampler_overrides(parser, [value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--samplers: expected MODEL=SPEC;SPEC with MODEL one of ['ae', 'dcgan', 'vae']" in err and repr(value) in err


def _args(tmp_path, overrides):
    return argparse.Namespace(samplers={}, runs_dir=str(tmp_path), celeba=str(tmp_path / "faces.tar"), epochs=2,
                              hflip=False, set=overrides)


def test_set_overrides_every_models_config(faces, tmp_path):
    args = _args(tmp_path, ["train.lr_schedule=cosine", "model.latent_dim=128"])
    for name in ("vae", "ae", "dcgan"):
        cfg = faces.config_for(name, args)
        assert cfg.train.lr_schedule == "cosine" and cfg.model.latent_dim == 128 and cfg.model.family == name
    assert faces.config_for("ae", _args(tmp_path, [])).train.lr_schedule == "constant"
    with pytest.raises(ValueError, match="train.lr_schedule: expected one of"):
        faces.config_for("ae", _args(tmp_path, ["train.lr_schedule=step"]))
