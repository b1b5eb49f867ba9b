"""Atomic file writes: a failed or interrupted write never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def default_cache_dir() -> Path:
    """Where latentatlas caches what it computes once (feature networks, statistics, datasets):
    ``$LATENTATLAS_CACHE`` if set, else ``~/.cache/latentatlas``."""
    env = os.environ.get("LATENTATLAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "latentatlas"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically (checkpoints, fitted samplers)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load(path: str | Path, what: str, *, map_location: Any = "cpu", hint: str = "") -> Any:
    """``torch.load(..., weights_only=True)`` of a file latentatlas wrote (a checkpoint, sampler, inverter:
    data, never code).  FileNotFoundError naming ``what`` and the path (plus ``hint``) when it is absent;
    ValueError when it cannot be read (truncated, corrupt, or not a torch file)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {str(path)!r}{hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{what}: could not read {str(path)!r}: the file is corrupt or not a latentatlas {what} "
                         f"({type(exc).__name__}: {exc})") from exc


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
