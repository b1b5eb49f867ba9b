"""Where a figure came from: every PNG written into a run's ``figures/`` carries its source (run, stage,
config hash) as PNG text chunks, read back by the report for each caption.

The config hash identifies what determines the results: the resolved config without ``name``,
``runs_dir``, ``parent`` and ``track`` (two runs made the same way share it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

RUN_KEY, STAGE_KEY, HASH_KEY = "latentatlas:run", "latentatlas:stage", "latentatlas:config_hash"
NOT_HASHED = ("name", "runs_dir", "parent", "track")
# figure-name prefix -> the stage that draws it (the first match wins)
FIGURE_STAGES = (("training_", "train"), ("codebook_", "train"), ("reconstructions", "encode"),
                 ("samples_", "sample"), ("fit_", "sample"), ("selection_", "sample"), ("components_", "sample"),
                 ("interp_", "interpolate"), ("attr_", "attributes"), ("geom_", "geometry"))


def config_hash(config: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the config (a plain dict) without name, runs_dir, parent and track."""
    kept = {k: v for k, v in config.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:12]


def figure_stage(name: str) -> str:
    """The stage that draws the figure file ``name`` ('report' for any other)."""
    return next((stage for prefix, stage in FIGURE_STAGES if name.startswith(prefix)), "report")


def figure_source(path: str | Path) -> dict[str, str]:
    """The source text chunks of a PNG about to be written at ``path``: run, stage and config hash when
    ``path`` lies in a run folder's figures/, else {}."""
    path = Path(path)
    config_path = path.parent.parent / "config.yaml"
    if path.parent.name != "figures" or not config_path.is_file():
        return {}
    config = yaml.safe_load(config_path.read_text()) or {}
    return {RUN_KEY: path.parent.parent.name, STAGE_KEY: figure_stage(path.name), HASH_KEY: config_hash(config)}


def png_info(source: dict[str, str]):
    """``source`` as a PIL PngInfo (tEXt chunks) for ``Image.save(..., pnginfo=...)``."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in source.items():
        info.add_text(key, value)
    return info


def read_source(path: str | Path) -> dict[str, str]:
    """The source chunks a PNG carries ({} when it has none or cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            text = dict(getattr(image, "text", {}) or {})
    except OSError:
        return {}
    return {k: v for k, v in text.items() if k in (RUN_KEY, STAGE_KEY, HASH_KEY)}


def describe_source(source: dict[str, str]) -> str:
    """'run a · stage sample · config 1a2b3c4d5e6f', or '' for no source."""
    if not source:
        return ""
    return (f"run {source.get(RUN_KEY, '?')} · stage {source.get(STAGE_KEY, '?')} · "
            f"config {source.get(HASH_KEY, '?')}")
