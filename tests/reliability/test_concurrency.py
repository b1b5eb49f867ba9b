"""Processes working on one run at once keep each other's results: metrics.json updates are locked, and
two stages started together both land."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from latentatlas.runs.store import Run

from .conftest import subprocess_env

UPDATER = """
import sys
from pathlib import Path
from latentatlas.runs.store import Run
run, me = Run(Path(sys.argv[1])), sys.argv[2]
for i in range(int(sys.argv[3])):
    run.update_metrics("shared", {f"{me}-{i}": i})
    run.update_metrics(me, {str(i): i})
"""


def test_concurrent_metric_updates_lose_nothing(tmp_path):
    run_dir, writers, updates = tmp_path / "run", 4, 30
    run_dir.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", UPDATER, str(run_dir), f"w{w}", str(updates)],
                              env=subprocess_env(), stderr=subprocess.PIPE, text=True) for w in range(writers)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        proc.stderr.close()
    metrics = Run(run_dir).read_metrics()
    assert len(metrics["shared"]) == writers * updates
    assert all(len(metrics[f"w{w}"]) == updates for w in range(writers))
    assert sorted(p.name for p in run_dir.iterdir()) == [".metrics.lock", "metrics.json"]   # no temporary file


def test_two_stages_on_one_run_at_once_both_land(run_copy):
    commands = [["sample", str(run_copy), "--sampler", "gaussian", "--n", "12"],
                ["sample", str(run_copy), "--sampler", "gmm:k=2", "--n", "12"]]
    procs = [subprocess.Popen([sys.executable, "-m", "latentatlas.cli", *c], env=subprocess_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    run = Run.open(run_copy)
    samplers = run.read_metrics()["samplers"]
    assert {"prior", "gaussian", "gmm_k-2"} <= set(samplers)
    assert samplers["gaussian"]["n"] == 12 and samplers["gmm_k-2"]["n"] == 12
    for name in ("gaussian", "gmm_k-2"):
        with np.load(run.samples_path(name)) as f:
            assert f["arr_0"].shape[0] == 12
    assert "evaluate" in run.read_metrics()   # the earlier stage's results are kept
