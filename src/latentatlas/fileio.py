"""Files latentatlas writes: atomic writes (a failed or interrupted write never leaves a half-written file
behind), a content hash written inside every torch and .npz artefact and verified on load, JSON reading
that names the file, and a lock for read-modify-write updates shared by concurrent processes.

Integrity: :func:`torch_save` and :func:`save_npz` add the key ``content_sha256`` (a sha256 of every key,
type, shape and byte of the content); :func:`torch_load` and :func:`load_npz` verify it and raise a
ValueError naming the file when it does not match.  Files without the key (written by latentatlas 0.1 or
another tool) load with a logged note.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

log = logging.getLogger(__name__)

HASH_KEY = "content_sha256"
STALE_TEMPORARY_SECONDS = 600   # a write's temporary file untouched this long was left by a killed process


def default_cache_dir() -> Path:
    """Where latentatlas caches what it computes once (feature networks, statistics, datasets):
    ``$LATENTATLAS_CACHE`` if set, else ``~/.cache/latentatlas``."""
    env = os.environ.get("LATENTATLAS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "latentatlas"


# -- atomic writes --------------------------------------------------------------------------------------
def _umask() -> int:
    """The process's umask (read by setting one, then set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success it replaces ``path`` in one step.  An OSError
    of the folder or the rename names ``path`` (not the temporary file) and the reason."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_earlier_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _naming(err, f"cannot write {str(path)!r}") from err
    os.fchmod(fd, 0o666 & ~_umask())   # as open() would make it: mkstemp's 0600 would hide reports from a lab
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp_path, path)
        except OSError as err:
            raise _naming(err, f"cannot replace {str(path)!r}") from err
        _fsync_dir(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _naming(err: OSError, what: str) -> OSError:
    """``err`` again, its message ``what: reason`` (the file meant, not a temporary one); same type and errno."""
    named = type(err)(f"{what}: {err.strerror or err}")
    named.errno = err.errno
    return named


def publish_copy(source: str | Path, path: str | Path) -> None:
    """Make ``path`` hold what the finished file ``source`` holds, in one step (``path`` replaced atomically):
    a hard link, which writes no bytes (every latentatlas write replaces a file by a rename and never changes
    one in place, so a later write of ``source`` leaves ``path`` as it is), or a copy where a link is refused."""
    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporary files of :func:`atomic_path` writes that a killed process left in ``folder``
    (call it only where no other process is writing)."""
    folder = Path(folder)
    for tmp in folder.glob(".*.tmp") if folder.is_dir() else []:
        log.debug("removing %s, left by an interrupted write", tmp)
        tmp.unlink(missing_ok=True)


def _remove_earlier_temporaries(path: Path) -> None:
    """Remove the temporary files of earlier writes of ``path`` that a killed process left beside it: those
    nothing has touched for STALE_TEMPORARY_SECONDS (a live write renames its file as soon as it is written;
    a hard link made into one, as publish_copy makes, touches it).  One that cannot be removed stays."""
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            stat = tmp.stat()
            if now - max(stat.st_mtime, stat.st_ctime) > STALE_TEMPORARY_SECONDS:
                tmp.unlink()
                log.debug("removed %s, left by an interrupted write", tmp)
        except OSError:   # renamed by its writer meanwhile, or a folder we may not write to
            continue


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """(inode, modification time) of a file, None when it is absent: an atomic replace changes it."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


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


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | Path, what: str) -> Any:
    """The JSON content of ``path``; a ValueError naming ``what`` and the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} {str(path)!r}: expected JSON, got a damaged or foreign file ({exc}); "
                         "restore it or delete it") from None


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


# -- content hash ---------------------------------------------------------------------------------------
def json_key(value: Any, digits: int, *, sort_keys: bool = True) -> str:
    """The first ``digits`` hex digits of the sha256 of ``value`` as JSON: the name of a cache entry
    (``sort_keys=False`` keeps the mapping's own order, as the cached networks' keys were made)."""
    return hashlib.sha256(json.dumps(value, sort_keys=sort_keys).encode()).hexdigest()[:digits]


def content_hash(obj: Any) -> str:
    """sha256 (hex) of a nested structure of mappings, lists, tuples, tensors, arrays and scalars: every
    key, type, dtype, shape and byte counts, so the hash of a loaded file equals the hash it was saved with."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, np.ndarray):
        h.update(f"array {obj.dtype.str} {obj.shape};".encode())
        h.update(repr(obj.tolist()).encode() if obj.dtype.hasobject
                 else np.ascontiguousarray(obj).reshape(-1).view(np.uint8))
    elif isinstance(obj, Mapping):
        h.update(f"map {len(obj)};".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__} {len(obj)};".encode())
        for value in obj:
            _feed(h, value)
    else:
        h.update(f"{type(obj).__name__} {obj!r};".encode())


def _verify(content: dict, stored: Any, what: str, path: Path) -> None:
    if stored is None:
        log.info("%s %s has no content hash (written by an older latentatlas or another tool): not verified",
                 what, path)
        return
    if content_hash(content) != str(stored):
        raise ValueError(f"{what} {str(path)!r}: its content does not match the hash written with it; the file "
                         "is damaged: restore it or make it again")


def _with_hash(content: Mapping, what: str) -> dict:
    if not isinstance(content, Mapping):
        raise TypeError(f"{what}: expected a mapping to save, got {type(content).__name__}")
    if HASH_KEY in content:
        raise ValueError(f"{what}: the key {HASH_KEY!r} is reserved for the content hash")
    return {**content, HASH_KEY: content_hash(content)}


# -- torch files ----------------------------------------------------------------------------------------
def torch_save(obj: Mapping, path: str | Path) -> Path:
    """``torch.save`` a mapping atomically, with its content hash (checkpoints, fitted samplers)."""
    import torch

    hashed = _with_hash(obj, str(path))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:   # a file object: the archive's folder is 'archive/',
        torch.save(hashed, fh)                              # not the random temporary name (same data, same bytes)
    return Path(path)


def torch_load(path: str | Path, what: str, *, map_location: Any = "cpu", hint: str = "") -> Any:
    """``torch.load(..., weights_only=True)`` of a file latentatlas wrote (a checkpoint, sampler, inverter:
    data, never code), its content hash verified.  FileNotFoundError naming ``what`` and the path (plus
    ``hint``) when it is absent; ValueError when it cannot be read (empty, truncated, damaged, foreign)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {str(path)!r}{hint}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        reason = "the file is empty" if path.stat().st_size == 0 else f"{type(exc).__name__}: {_first_line(exc)}"
        raise ValueError(f"{what} {str(path)!r}: could not read it: the file is corrupt or not a latentatlas "
                         f"{what} ({reason})") from None
    if isinstance(data, dict):
        _verify(data, data.pop(HASH_KEY, None), what, path)
    return data


# -- .npz files -----------------------------------------------------------------------------------------
def save_npz(path: str | Path, **arrays: Any) -> Path:
    """``np.savez`` atomically, with the content hash of the arrays as one more array (latents, samples)."""
    import numpy as np

    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    hashed = _with_hash(arrays, str(path))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{**arrays, HASH_KEY: np.array(hashed[HASH_KEY])})
    return Path(path)


def load_npz(path: str | Path, what: str, *, hint: str = "") -> dict[str, Any]:
    """Every array of a .npz (no pickles), its content hash verified when it has one.  FileNotFoundError
    when absent; ValueError naming ``what`` and the file when it is empty, truncated, damaged or not a .npz."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {str(path)!r}{hint}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # zipfile, zlib, numpy and OS errors for damaged or foreign files
        raise ValueError(f"{what} {str(path)!r}: expected a .npz archive, got {_npz_problem(path, exc)}") from None
    stored = arrays.pop(HASH_KEY, None)
    _verify(arrays, None if stored is None else str(stored), what, path)
    return arrays


def _npz_problem(path: Path, exc: Exception) -> str:
    """Why a file is not a readable .npz, in words (numpy's own message suggests allow_pickle)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        return "an empty file"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array (save it with numpy.savez(path, arr_0=array))"
    if not head.startswith(b"PK"):
        return "a file that is not a zip archive"
    return f"a damaged archive ({type(exc).__name__}: {_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


# -- locks ----------------------------------------------------------------------------------------------
@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing; an OS lock, released if the process dies)
    for a read-modify-write that concurrent processes share."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        _lock(fh.fileno(), True)
        try:
            yield
        finally:
            _lock(fh.fileno(), False)


def _lock(fd: int, acquire: bool) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK if acquire else msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_EX if acquire else fcntl.LOCK_UN)
