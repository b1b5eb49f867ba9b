"""fileio.json_key: the one way cache entries are named from their settings."""

from __future__ import annotations

import hashlib
import json

from latentatlas.fileio import json_key


def test_json_key_is_the_sha256_of_the_json_and_sorts_keys_unless_told():
    a, b = {"size": 64, "crop": [10, 99]}, {"crop": [10, 99], "size": 64}
    assert json_key(a, 20) == hashlib.sha256(json.dumps(b).encode()).hexdigest()[:20] == json_key(b, 20)
    assert json_key(a, 16, sort_keys=False) != json_key(b, 16, sort_keys=False)      # the mapping's own order
    assert json_key(a, 16, sort_keys=False) == hashlib.sha256(json.dumps(a).encode()).hexdigest()[:16]
    assert len(json_key(a, 24)) == 24 and json_key({**a, "size": 32}, 20) != json_key(a, 20)
