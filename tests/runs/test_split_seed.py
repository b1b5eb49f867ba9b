"""``data.split_seed``: replicates that vary only ``seed`` share their split and the networks that judge
their samples, while the model's own randomness follows ``seed``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from latentatlas import config as config_mod
from latentatlas.runs import pipeline
from latentatlas.runs.session import load_run_data

from ..reliability.conftest import ring_config


def _config(tmp_path, seed: int, split_seed: int | None, name: str = "r") -> config_mod.RunConfig:
    values = ring_config(tmp_path / "runs", name=name, train={"epochs": 1})
    values["seed"] = seed
    values["data"] = {**values["data"], "split_seed": split_seed}
    return config_mod.from_dict(values)


def _train_rows(config) -> torch.Tensor:
    return torch.nonzero(load_run_data(config).split == 0).flatten()


def test_the_data_seed_is_the_split_seed_or_else_the_run_seed(tmp_path):
    assert _config(tmp_path, 3, None).data_seed == 3
    assert _config(tmp_path, 3, 0).data_seed == 0


def test_replicates_with_one_split_seed_share_the_split_and_other_seeds_do_not(tmp_path):
    assert len(_train_rows(_config(tmp_path, 0, None))) == 240
    fixed = [_train_rows(_config(tmp_path, seed, 0)) for seed in (0, 1, 2)]
    assert all(torch.equal(fixed[0], rows) for rows in fixed[1:])
    assert torch.equal(fixed[0], _train_rows(_config(tmp_path, 0, None)))     # None: the run's seed
    assert not torch.equal(fixed[0], _train_rows(_config(tmp_path, 1, None)))


def test_feature_networks_are_seeded_with_the_data_seed(tmp_path, monkeypatch):
    from latentatlas.metrics import features
    from latentatlas.runs.analysis_context import feature_function

    seeds = []

    def spy(name, **kwargs):
        seeds.append(kwargs["seed"])
        raise RuntimeError("stop here")

    monkeypatch.setattr(features, "build_extractor", spy)

    class FakeRun:
        config = _config(tmp_path, 7, 2)

    with pytest.raises(RuntimeError, match="stop here"):
        feature_function(FakeRun(), None, "cpu", "classifier")
    assert seeds == [2]


def _with_data(config, **changes) -> config_mod.RunConfig:
    values = config_mod.to_dict(config)
    return config_mod.from_dict({**values, "data": {**values["data"], **changes}})


def test_a_resume_that_changes_the_split_is_refused_before_training(tmp_path):
    config = _config(tmp_path, 1, 0)
    pipeline.train_stage(config)
    last = (tmp_path / "runs" / "r" / "checkpoints" / "last.pt").read_bytes()
    for changed in ({"split_seed": 1}, {"split_seed": None}, {"val_fraction": 0.2}):
        with pytest.raises(ValueError, match="resume: the data split cannot change on resume"):
            pipeline.train_stage(_with_data(config, **changed), resume=True)
    assert (tmp_path / "runs" / "r" / "checkpoints" / "last.pt").read_bytes() == last


def test_a_resume_that_names_the_seed_the_split_already_had_continues(tmp_path):
    config = _config(tmp_path, 0, None)
    pipeline.train_stage(config)
    longer = dataclasses.replace(_with_data(config, split_seed=0),
                                 train=dataclasses.replace(config.train, epochs=2))
    run = pipeline.train_stage(longer, resume=True)
    assert run.read_metrics()["train"]["epochs_run"] == 2
