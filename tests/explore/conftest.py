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


class Served:
    """`latentatlas explore RUN --port P` in a subprocess, started: its base URL, and its output so far."""

    def __init__(self, run_path) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "latentatlas.cli", "explore", str(run_path), "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        watchdog = threading.Timer(120, self.process.kill)          # a server that never starts fails the tests
        watchdog.start()
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith("explorer: http://"):
                break
        watchdog.cancel()
        if not self.lines or not self.lines[-1].startswith("explorer: http://"):
            self.process.kill()
            pytest.fail("the explorer did not start:\n" + "".join(self.lines[-30:]))
        self.drain = threading.Thread(target=self.lines.extend, args=(self.process.stdout,), daemon=True)
        self.drain.start()                                               # keeps the pipe from filling up

    def stop(self, timeout: float = 20) -> int:
        """Terminate it (if still running) and wait; -> its exit status."""
        if self.process.poll() is None:
            self.process.terminate()
        status = self.process.wait(timeout=timeout)
        self.drain.join(timeout=5)
        return status


@pytest.fixture(scope="module")        # stopped once the module that uses it is done
def served(explore_run):
    """The explorer of ``explore_run`` served by the CLI in a subprocess: its base URL."""
    server = Served(explore_run.path)
    yield server.url
    server.stop()


@pytest.fixture
def own_server(explore_run):
    """The explorer of ``explore_run`` in a subprocess of this test's own (stopped at its end): a Served."""
    server = Served(explore_run.path)
    yield server
    server.stop()
