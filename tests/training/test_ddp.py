"""Data-parallel training (2 CPU processes, gloo) reaches the single-process weights on the same batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from latentatlas.training import train

from .helpers import ddp_train_config, family_options, tiny_dataset, tiny_model

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
@pytest.mark.parametrize("family", ["vae", "gan"])
def test_ddp_matches_single_process(tmp_path, family):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(SCRIPT),
           str(tmp_path / "ddp"), family]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("rank done") == 2

    single = train(tiny_model(family, **family_options(family)), tiny_dataset(), ddp_train_config(),
                   tmp_path / "single", seed=5)
    a = torch.load(tmp_path / "single" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == single.steps
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=1e-5)
    for name, state in a["optimizers"].items():   # both players' Adam moments
        for i, moments in state["state"].items():
            torch.testing.assert_close(b["optimizers"][name]["state"][i]["exp_avg"], moments["exp_avg"], rtol=0,
                                       atol=1e-5)
    keys = {"vae": ("train_loss", "train_kl", "val_loss", "val_recon", "val_kl"),
            "gan": ("train_discriminator_loss", "train_discriminator_penalty", "train_generator_loss")}[family]
    for line_a, line_b in zip(a["history"], b["history"], strict=True):
        for key in keys:
            assert line_b[key] == pytest.approx(line_a[key], rel=1e-4, abs=1e-6), key


@pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed gloo")
def test_the_cli_under_torchrun_prints_the_run_folder_once_and_logs_from_rank_0(tmp_path):
    """A script that reads `latentatlas train`'s output gets one line, not one a process."""
    from tests.reliability.conftest import ring_config, write_config

    config = write_config(tmp_path, ring_config(tmp_path / "runs", name="ddp", train={"epochs": 1}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m",
           "latentatlas.cli", "train", str(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines() == [str(tmp_path / "runs" / "ddp")]
