"""Shared fixtures: the ../shared/data folder (skipped when absent), an isolated cache, tiny images, headless
chromium for the browser tests (skipped, with the reason, where absent) and a folder for their screenshots."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ARTIFACTS = Path(os.environ.get("LATENTATLAS_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data; the test is skipped with a reason when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the shared data folder {SHARED_DATA} (present in CI)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own LATENTATLAS_CACHE so cached feature networks never leak between tests."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("LATENTATLAS_CACHE", str(cache))
    return cache


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _python_sigint_handler():
    """Python's own SIGINT handler, as in a terminal, for the suite and the processes it starts: a suite
    started with SIGINT ignored (nohup, a shell without job control) would keep it ignored, its children
    would inherit that, and the Ctrl-C tests would test nohup's behaviour instead of ours."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    """Keep tests light on the 2-core CI machine."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by playwright; skipped where either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need playwright: pip install -e '.[test]'")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).is_file():
        pytest.skip("browser tests need Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def artifacts(request) -> Path:
    """A folder for screenshots: tests/artifacts/<test folder>/<test name>/ (or under $LATENTATLAS_TEST_ARTIFACTS)."""
    folder = ARTIFACTS / request.path.parent.name / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
