"""fileio: json_key, the one way cache entries are named from their settings; publish_copy, a second name
for a finished file that later writes of the first leave alone."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from latentatlas.fileio import json_key, publish_copy, write_text


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
