"""Fuzzing the config and spec parsers with Hypothesis: whatever a user writes, the result is a config (or
sampler) or a ValueError whose message starts with the name of the parameter at fault; never a traceback
of another kind.  Deterministic (derandomize) and bounded."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentatlas import config as config_mod
from latentatlas.latent.samplers import SAMPLERS
from latentatlas.models import MODELS
from latentatlas.runs.pipeline import check_stages, sampler_for
from latentatlas.validate import check_folder_name

FUZZ = settings(max_examples=150, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _field_paths(cls, prefix: str) -> set[str]:
    paths = set()
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        paths.add(path)
        if dataclasses.is_dataclass(f.default_factory() if callable(f.default_factory) else None):
            paths |= _field_paths(type(f.default_factory()), path + ".")
    return paths


MODEL_FIELDS = sorted({f.name for name in MODELS.names() for f in dataclasses.fields(MODELS.get(name).config)})
CONFIG_PATHS = _field_paths(config_mod.RunConfig, "") | {f"model.{k}" for k in MODEL_FIELDS} | {"config"}
SECTION_FIELDS = {s: sorted(p.split(".", 1)[1] for p in CONFIG_PATHS if p.startswith(s + "."))
                  for s in ("data", "model", "train", "codes", "sample", "evaluate")}
SAMPLER_KEYS = sorted({k for name in SAMPLERS.names() for k in SAMPLERS.get(name).defaults})

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from(["auto", "cpu", "gmm:k=2", "prior", "1e-3", "full", "vae"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                          max_size=2), max_leaves=6)


def _section(name: str):
    keys = st.sampled_from(SECTION_FIELDS[name]) | st.text(max_size=5)
    if name == "model":
        return st.dictionaries(keys, values, max_size=3).flatmap(
            lambda d: st.sampled_from(MODELS.names() + ["nope"]).map(lambda fam: {**d, "family": fam}))
    return st.dictionaries(keys, values, max_size=3)


configs = st.fixed_dictionaries({}, optional={
    **{s: _section(s) for s in SECTION_FIELDS}, "name": values, "seed": values, "runs_dir": values,
    "parent": values, "unknown_top": values})


def _assert_names_a_parameter(err: ValueError, allowed) -> None:
    head = str(err).split(": ", 1)[0]
    assert allowed(head), f"the error does not start with a parameter name: {err}"


def _config_parameter(head: str) -> bool:
    return head in CONFIG_PATHS or head.startswith(("--set ", "config '"))


@FUZZ
@given(configs)
def test_any_config_mapping_builds_or_names_the_parameter(values):
    try:
        config_mod.from_dict(values)
    except ValueError as err:
        _assert_names_a_parameter(err, _config_parameter)


KEYS = st.sampled_from(sorted(CONFIG_PATHS - {"config"})) | st.text(max_size=10)
RAW = st.text(max_size=12) | st.sampled_from(["[1,", "{", "null", "1e-4", ".nan", "-1", "[prior, kde]", "'x"])


@FUZZ
@given(st.lists(st.tuples(KEYS, RAW).map(lambda kv: f"{kv[0]}={kv[1]}") | st.text(max_size=10), max_size=4))
def test_any_overrides_apply_or_name_the_parameter(overrides):
    try:
        config_mod.from_dict(config_mod.apply_overrides({"train": {"epochs": 2}}, overrides))
    except ValueError as err:
        _assert_names_a_parameter(err, lambda head: _config_parameter(head) or head == "--set")


YAMLISH = st.text(alphabet=st.sampled_from(list("abtrinepoch:{}[]-,'\"\n #&*!|>%@`019.e\t")), max_size=60)
SNIPPETS = st.lists(st.sampled_from(["train:\n", "  epochs: ", "  lr: ", "model:\n", "  family: ", "sample:\n",
                                     "  samplers: [", "gmm:k=", "]\n", "name: ", "../x\n", "3\n", "1e-3\n", "{", ": :",
                                     "\n", "- ", "&a ", "*a ", "!!python/object ", "\x00", "\udcff"]), max_size=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "config.yaml"


@FUZZ
@given(YAMLISH | SNIPPETS.map("".join))
def test_any_config_file_loads_or_names_the_file_or_parameter(scratch, text):
    scratch.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        config = config_mod.load(scratch)
    except ValueError as err:
        _assert_names_a_parameter(err, _config_parameter)
    else:
        check_folder_name("name", config.name) if config.name else None


SPEC_VALUES = st.text(max_size=6) | st.sampled_from(["-1", "0", "2", "auto", "[1,", ".inf", "full", "[1, 2]", "{a: 1}"])
specs = (st.tuples(st.sampled_from(SAMPLERS.names() + ["nope"]),
                   st.lists(st.tuples(st.sampled_from(SAMPLER_KEYS) | st.text(max_size=4), SPEC_VALUES), max_size=3))
         .map(lambda t: t[0] + (":" + ",".join(f"{k}={v}" for k, v in t[1]) if t[1] else ""))) | st.text(max_size=16)


def _spec_parameter(head: str) -> bool:
    return head in SAMPLER_KEYS or head in ("spec", "sample.samplers") or bool(re.match(r"^(spec|sampler) '", head))


@FUZZ
@given(specs, st.sampled_from(["vae", "vqvae"]))
def test_any_sampler_spec_builds_or_names_the_parameter(spec, family):
    try:
        sampler_for(spec, family)
    except ValueError as err:
        _assert_names_a_parameter(err, _spec_parameter)


@FUZZ
@given(st.lists(specs | values, max_size=3), st.lists(values, max_size=2), values)
def test_the_pre_training_check_of_stages_names_the_parameter(samplers, metrics, extractor):
    try:
        config = config_mod.from_dict({"sample": {"samplers": samplers}, "evaluate": {"metrics": metrics,
                                                                                       "extractor": extractor}})
        check_stages(config)
    except ValueError as err:
        _assert_names_a_parameter(err, lambda head: _config_parameter(head) or _spec_parameter(head))


@FUZZ
@given(st.text(max_size=30))
def test_an_accepted_run_name_stays_one_folder_inside_runs_dir(name):
    runs = Path("/runs")
    try:
        check_folder_name("name", name)
    except ValueError as err:
        assert str(err).startswith("name: expected one folder name")
    else:
        assert (runs / name).parent == runs and name not in (".", "..") and "/" not in name and "\\" not in name
