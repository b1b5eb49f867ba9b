"""Every kind of artefact (checkpoint, fitted sampler, latents, samples, metrics.json), damaged in several
ways: the stage that reads it stops with one line naming the file and exit code 2, and the files of the
stages before it stay as they were."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentatlas.fileio import HASH_KEY, save_npz, torch_save
from latentatlas.latent.samplers import load_sampler
from latentatlas.training import load_checkpoint

from .conftest import error_lines


# -- ways to damage a file ------------------------------------------------------------------------------
def empty(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def text(path: Path) -> None:
    path.write_text("these are not the bytes you are looking for\n")


def flipped_torch_bytes(path: Path) -> None:
    """One flipped bit inside the largest floating tensor of a torch file (the zip stays valid)."""
    content = torch.load(path, weights_only=True)
    tensors = [t for t in _tensors(content) if t.is_floating_point() and t.numel() >= 2]
    needle = max(tensors, key=torch.Tensor.numel).contiguous().numpy().tobytes()[:32]
    data = bytearray(path.read_bytes())
    where = data.find(needle)
    assert where >= 0
    data[where + 3] ^= 0x40
    path.write_bytes(bytes(data))


def flipped_npz_bytes(path: Path) -> None:
    """One flipped bit in the middle of the first array's data (the zip's CRC no longer matches)."""
    data = bytearray(path.read_bytes())
    with np.load(path) as archive:
        needle = np.ascontiguousarray(archive[archive.files[0]]).tobytes()[:16]
    where = data.find(needle)
    assert where >= 0
    data[where + 2] ^= 0x10
    path.write_bytes(bytes(data))


def wrong_hash_npz(path: Path) -> None:
    """A well-formed .npz whose arrays were changed after its content hash was written."""
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    first = next(k for k in arrays if k != HASH_KEY)
    arrays[first] = arrays[first].copy()
    arrays[first].flat[0] += 1
    np.savez(path, **arrays)


def wrong_hash_torch(path: Path) -> None:
    content = torch.load(path, weights_only=True)
    tensor = max((t for t in _tensors(content) if t.is_floating_point()), key=torch.Tensor.numel)
    tensor.view(-1)[0] += 1
    torch.save(content, path)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _snapshot(run: Path, parts: tuple[str, ...]) -> dict[str, str]:
    """sha256 of every file under ``parts`` of a run folder."""
    files = [p for part in parts for p in sorted((run / part).rglob("*") if (run / part).is_dir() else [run / part])]
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def _assert_one_error_naming(err: str, file: Path, *words: str) -> None:
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("latentatlas: error: "), err
    assert str(file) in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def _assert_stage_refuses(run: Path, cli, damaged: Path, kept: tuple[str, ...], *command: str) -> None:
    """``latentatlas COMMAND RUN ...`` on a run with ``damaged`` exits 2 with one line naming that file and
    leaves the files under ``kept`` as they were."""
    before = _snapshot(run, kept)
    code, _, err = cli(command[0], run, *command[1:])
    assert code == 2
    _assert_one_error_naming(err, damaged)
    assert _snapshot(run, kept) == before


TORCH_DAMAGE = [empty, truncated, text, flipped_torch_bytes, wrong_hash_torch]
NPZ_DAMAGE = [empty, truncated, text, flipped_npz_bytes, wrong_hash_npz]


# -- checkpoint -> encode -------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", TORCH_DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_checkpoint_stops_encode(run_copy, cli, damage):
    best = run_copy / "checkpoints" / "best.pt"
    damage(best)
    _assert_stage_refuses(run_copy, cli, best, ("latents.npz", "samples", "metrics.json"), "encode")


def test_a_checkpoint_with_non_finite_weights_stops_encode(run_copy, cli):
    best = run_copy / "checkpoints" / "best.pt"
    ckpt = load_checkpoint(best)
    next(iter(ckpt["model"].values())).view(-1)[:3] = float("nan")
    torch_save(ckpt, best)      # a well-formed file, its hash right: the weights themselves are bad
    code, _, err = cli("encode", run_copy)
    assert code == 2
    _assert_one_error_naming(err, best, "expected finite values", "3 NaN")


def test_a_checkpoint_without_a_hash_still_loads_with_a_note(run_copy, caplog):
    best = run_copy / "checkpoints" / "best.pt"
    content = torch.load(best, weights_only=True)
    content.pop(HASH_KEY)
    torch.save(content, best)   # as latentatlas 0.1 wrote it
    with caplog.at_level("INFO"):
        assert load_checkpoint(best)["epoch"] == content["epoch"]
    assert "no content hash" in caplog.text


@pytest.mark.parametrize("content", [b"", b"model: {family: [vae\n", b"\xff\xfe", b"- a list\n"])
def test_a_damaged_run_config_stops_encode(run_copy, cli, content):
    config = run_copy / "config.yaml"
    config.write_bytes(content)
    code, _, err = cli("encode", run_copy)
    assert code == 2
    _assert_one_error_naming(err, config)


# -- fitted sampler -> load_sampler ---------------------------------------------------------------------
@pytest.mark.parametrize("damage", TORCH_DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_sampler_is_refused_naming_the_file(run_copy, damage):
    path = run_copy / "samplers" / "gaussian.pt"
    assert load_sampler(path).is_fitted
    damage(path)
    with pytest.raises(ValueError, match="sampler '.*gaussian.pt'"):
        load_sampler(path)


# -- latents -> sample ----------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", NPZ_DAMAGE, ids=lambda f: f.__name__)
def test_damaged_latents_stop_sample(run_copy, cli, damage):
    latents = run_copy / "latents.npz"
    damage(latents)
    _assert_stage_refuses(run_copy, cli, latents, ("checkpoints", "samples", "samplers"),
                          "sample", "--sampler", "gaussian", "--n", "8")


@pytest.mark.parametrize("problem", ["nan_codes", "no_codes"])
def test_latents_with_bad_codes_stop_sample(run_copy, cli, problem):
    latents = run_copy / "latents.npz"
    with np.load(latents) as archive:
        arrays = {k: archive[k] for k in archive.files if k != HASH_KEY}
    if problem == "nan_codes":
        arrays["z_mean"][5, 1] = np.nan
    else:
        del arrays["z_mean"]
    save_npz(latents, **arrays)   # well-formed, hash right
    code, _, err = cli("sample", run_copy, "--sampler", "gaussian", "--n", "8")
    assert code == 2
    _assert_one_error_naming(err, latents, "expected finite values" if problem == "nan_codes" else "'z_mean'")


# -- samples -> evaluate --------------------------------------------------------------------------------
def npy_instead(path: Path) -> None:
    with np.load(path) as archive:
        images = archive["arr_0"]
    with open(path, "wb") as fh:
        np.save(fh, images)


def float_images(path: Path) -> None:
    with np.load(path) as archive:
        images = archive["arr_0"]
    save_npz(path, arr_0=images.astype(np.float32) / 255)


@pytest.mark.parametrize("damage", NPZ_DAMAGE + [npy_instead, float_images], ids=lambda f: f.__name__)
def test_damaged_samples_stop_evaluate(run_copy, cli, damage):
    samples = run_copy / "samples" / "prior.npz"
    damage(samples)
    _assert_stage_refuses(run_copy, cli, samples, ("checkpoints", "latents.npz", "samples"), "evaluate")


# -- metrics.json -> report, evaluate -------------------------------------------------------------------
def binary(path: Path) -> None:
    path.write_bytes(bytes(range(256)))


def a_list(path: Path) -> None:
    path.write_text(json.dumps([1, 2, 3]))


@pytest.mark.parametrize("damage", [empty, truncated, text, binary, a_list], ids=lambda f: f.__name__)
@pytest.mark.parametrize("stage", ["report", "evaluate", "sample"])
def test_a_damaged_metrics_file_stops_the_stage_and_is_kept(run_copy, cli, damage, stage):
    metrics = run_copy / "metrics.json"
    damage(metrics)
    damaged = metrics.read_bytes()
    before = sorted(p.relative_to(run_copy) for p in run_copy.rglob("*"))
    code, _, err = cli(stage, run_copy, *(["--sampler", "gaussian"] if stage == "sample" else []))
    assert code == 2
    _assert_one_error_naming(err, metrics)
    assert metrics.read_bytes() == damaged     # never overwritten: what it held may still be recovered
    assert sorted(p.relative_to(run_copy) for p in run_copy.rglob("*")) == before   # nothing written first
