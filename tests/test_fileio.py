"""fileio: json_key, the one way cache entries are named from their settings; publish_copy, a second name
for a finished file that later writes of the first leave alone; atomic_path, whose files get the mode any new file
gets."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from latentatlas.fileio import atomic_path, json_key, publish_copy, write_text


def test_json_key_is_the_sha256_of_the_json_and_sorts_keys_unless_told():
    a, b = {"size": 64, "crop": [10, 99]}, {"crop": [10, 99], "size": 64}
    assert json_key(a, 20) == hashlib.sha256(json.dumps(b).encode()).hexdigest()[:20] == json_key(b, 20)
    assert json_key(a, 16, sort_keys=False) != json_key(b, 16, sort_keys=False)      # the mapping's own order
    assert json_key(a, 16, sort_keys=False) == hashlib.sha256(json.dumps(a).encode()).hexdigest()[:16]
    assert len(json_key(a, 24)) == 24 and json_key({**a, "size": 32}, 20) != json_key(a, 20)


@pytest.mark.parametrize("links", [True, False])
def test_a_published_copy_keeps_its_content_when_the_source_is_written_again(tmp_path, monkeypatch, links):
    if not links:                                           # a file system that refuses hard links
        def refuse(*args):
            raise OSError("links not supported")
        monkeypatch.setattr(os, "link", refuse)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    write_text(best, "stale")
    write_text(last, "epoch 1")
    publish_copy(last, best)
    assert best.read_text() == "epoch 1" and (os.stat(best).st_ino == os.stat(last).st_ino) == links
    write_text(last, "epoch 2")                               # the next epoch's checkpoint, by rename
    assert best.read_text() == "epoch 1" and last.read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]   # no temporary left


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_written_file_has_the_mode_the_umask_gives_like_any_new_file(tmp_path, umask):
    """Temporary files start private (mkstemp's 0600); the published file must not stay so, or a labmate or a
    web server could not open a report."""
    old = os.umask(umask)
    try:
        with atomic_path(tmp_path / "report.html") as tmp:
            tmp.write_text("<html></html>")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("report.html", "plain.txt")}
    assert modes == {"report.html": 0o666 & ~umask, "plain.txt": 0o666 & ~umask}


def test_the_same_data_saved_twice_gives_the_same_bytes(tmp_path):
    """torch.save names the archive's folder after the file it is given: the random temporary name made two
    saves of the same sampler differ in every byte of their names."""
    import torch

    from latentatlas.fileio import torch_load, torch_save

    data = {"weights": torch.arange(6.0).reshape(2, 3), "k": 3}
    a, b = torch_save(data, tmp_path / "a.pt"), torch_save(data, tmp_path / "b.pt")
    assert a.read_bytes() == b.read_bytes()
    assert torch.equal(torch_load(a, "sampler")["weights"], data["weights"])


def test_a_write_removes_what_a_killed_write_of_the_same_file_left_once_nothing_touched_it_for_a_while(tmp_path):
    old, fresh = tmp_path / ".latents.npz.abc.tmp", tmp_path / ".latents.npz.def.tmp"
    other = tmp_path / ".metrics.json.ghi.tmp"                        # another file's: its own next write's job
    for path in (old, fresh, other):
        path.write_bytes(b"partial")
    long_ago = time.time() - 7200
    for path in (old, other):
        os.utime(path, (long_ago, long_ago))
    with patched_ctime(old, other, at=long_ago):
        write_text(tmp_path / "latents.npz", "x")
    assert not old.exists() and fresh.exists() and other.exists()   # a live write's file stays


@contextmanager
def patched_ctime(*paths, at: float):
    """os.stat of ``paths`` with their change time at ``at`` (a test cannot set a ctime)."""
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):
        result = real_stat(path, *args, **kwargs)
        if Path(path) in paths:
            values = list(result)
            values[stat.ST_CTIME] = int(at)
            return os.stat_result(values, {"st_ctime": at, "st_mtime": result.st_mtime})
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "stat", fake_stat)
        yield


def test_a_write_that_cannot_be_made_names_the_file_not_its_temporary(tmp_path):
    (tmp_path / "metrics.json").mkdir()                       # something that no file can replace
    with pytest.raises(IsADirectoryError) as err:
        write_text(tmp_path / "metrics.json", "{}")
    assert str(err.value) == f"cannot replace {str(tmp_path / 'metrics.json')!r}: Is a directory"
    assert err.value.errno == errno.EISDIR
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"^cannot write '.*/file/report.html': "):
        write_text(tmp_path / "file" / "report.html", "")    # its folder is a file
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
