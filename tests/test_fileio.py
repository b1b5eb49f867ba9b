"""fileio: json_key, the one way cache entries are named from their settings; publish_copy, a second name
for a finished file that later writes of the first leave alone; atomic_path, whose files get the mode any new file
gets."""

from __future__ import annotations

import hashlib
import json
import os
import stat

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
