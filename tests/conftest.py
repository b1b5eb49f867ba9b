"""Shared fixtures: the ../shared/data folder (skipped when absent), an isolated cache, tiny images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
def _few_threads():
    """Keep tests light on the 2-core CI machine."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
