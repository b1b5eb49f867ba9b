"""Fixtures of the explorer tests: a tiny trained run folder (an AE trained for a few steps on the embedded
digits, encoded, with a fitted 3-component mixture), the Explorer over it, a TestClient, the explorer
served by the CLI in a subprocess.  Headless chromium (`browser`) and the screenshot folder (`artifacts`) are
shared fixtures of tests/conftest.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from latentatlas import config as config_mod
from latentatlas.runs import pipeline

GMM_SPEC = "gmm:k=3,covariance=full"
GMM_NAME = "gmm_k-3_covariance-full"


@pytest.fixture(scope="session")
def explore_run(tmp_path_factory):
    """A run folder: 400 digits, an AE with 4-d codes trained for 6 steps, latents.npz, a fitted GMM."""
    config = config_mod.from_dict({
        "name": "explore", "runs_dir": str(tmp_path_factory.mktemp("runs")), "seed": 0,
        "data": {"name": "mnist", "limit": 400},
        "model": {"family": "ae", "latent_dim": 4, "width": 8},
        "train": {"epochs": 1, "max_steps": 6, "batch_size": 64, "progress": False, "device": "cpu"},
        "sample": {"samplers": [GMM_SPEC], "n": 16}})
    run = pipeline.train_stage(config)
    pipeline.encode_stage(run)
    pipeline.sample_stage(run)
    return run


@pytest.fixture(scope="session")
def gmm_name() -> str:
    """The name (file stem) of the run's mixture sampler."""
    return GMM_NAME


@pytest.fixture(scope="session")
def explorer(explore_run):
    from latentatlas.explore.explorer import Explorer

    return Explorer(explore_run)


@pytest.fixture(scope="session")
def client(explorer):
    """Starlette's TestClient over the app; server errors come back as responses, not exceptions."""
    from starlette.testclient import TestClient

    from latentatlas.explore.app import create_app

    return TestClient(create_app(explorer), raise_server_exceptions=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")        # stopped once the module that uses it is done
def served(explore_run):
    """`latentatlas explore RUN --port P` in a subprocess; its base URL once it prints its address."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "latentatlas.cli", "explore", str(explore_run.path),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    watchdog = threading.Timer(120, process.kill)          # a server that never starts fails the tests
    watchdog.start()
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("explorer: http://"):
            break
    watchdog.cancel()
    if not lines or not lines[-1].startswith("explorer: http://"):
        process.kill()
        pytest.fail("the explorer did not start:\n" + "".join(lines[-30:]))
    drain = threading.Thread(target=process.stdout.read, daemon=True)     # keeps the pipe from filling up
    drain.start()
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)
    drain.join(timeout=5)
