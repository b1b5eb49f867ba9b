"""Lineage: which run a run was derived from (``parent`` in its config), its children, and the family tree
of a runs folder, every link read from the folders themselves (a removed folder leaves no dangling index)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from latentatlas import config as config_mod
from latentatlas.config import RunConfig
from latentatlas.runs.tables import fmt_number
from latentatlas.runs.results import config_changes
from latentatlas.runs.store import Run, list_runs, resolved_view


def derive_config(parent: Run, overrides: list[str] | tuple[str, ...] = (), name: str | None = None) -> RunConfig:
    """The config of a run derived from ``parent``: its config with ``overrides`` applied, ``parent`` set to
    its name, in the same runs folder, named ``name`` (default: a new name made from the config)."""
    values = {k: v for k, v in parent.config_dict().items() if k != "name"}
    values.update(parent=parent.name, runs_dir=str(parent.path.parent))
    values = config_mod.apply_overrides(values, overrides)
    if name is not None:
        values["name"] = name
    if values.get("parent") != parent.name:
        raise ValueError(f"--set parent: a derived run's parent is {parent.name!r}; leave parent unset")
    if values.get("name") == parent.name and Path(values.get("runs_dir", "")) == parent.path.parent:
        raise ValueError(f"name: a derived run needs a name other than its parent's, got {parent.name!r}")
    return config_mod.from_dict(values)


def parent_of(run: Run) -> Run | None:
    """The run ``run`` was derived from, if its folder is still there (None too when its config is unreadable)."""
    try:
        return run.parent()
    except (OSError, ValueError, yaml.YAMLError):
        return None


def children(run: Run) -> list[Run]:
    """The runs beside ``run`` whose parent it is, oldest first."""
    here = run.path.resolve()
    return [r for r in list_runs(run.path.parent) if r.path.resolve() != here and _parent_path(r) == here]


def tree_lines(runs_dir: str | Path) -> list[str]:
    """The family tree of a runs folder as text lines: roots (runs without a parent, or whose parent folder
    is gone, marked so) with their descendants indented under them, each with what it changed."""
    runs = list_runs(runs_dir)
    by_path = {r.path.resolve(): r for r in runs}
    kids: dict[Path, list[Run]] = {}
    roots: list[Run] = []
    for run in runs:
        parent = _parent_path(run)
        if parent in by_path and parent != run.path.resolve():
            kids.setdefault(parent, []).append(run)
        else:
            roots.append(run)
    lines: list[str] = []
    seen: set[Path] = set()

    def visit(run: Run, prefix: str, connector: str, is_root: bool) -> None:
        seen.add(run.path.resolve())
        lines.append(f"{prefix}{connector}{run.name}{_node_note(run, is_root)}")
        below = [k for k in kids.get(run.path.resolve(), []) if k.path.resolve() not in seen]
        extension = "" if is_root else ("    " if connector.startswith("└") else "│   ")
        for i, child in enumerate(below):
            visit(child, prefix + extension, "└── " if i == len(below) - 1 else "├── ", False)

    for root in roots:
        visit(root, "", "", True)
    for run in runs:                       # runs only reachable through a cycle of parents
        if run.path.resolve() not in seen:
            visit(run, "", "", True)
    return lines


def _parent_path(run: Run) -> Path | None:
    parent = parent_of(run)
    return parent.path.resolve() if parent is not None else None


def _node_note(run: Run, is_root: bool) -> str:
    """'  (model.kl_weight: 1 -> 4)' for a child; '  (parent 'x' not found)' for an orphan."""
    try:
        config = run.config_dict()
    except (OSError, ValueError, yaml.YAMLError) as err:
        return f"  (config.yaml unreadable: {type(err).__name__})"
    name = config.get("parent")
    if not name:
        return ""
    parent = parent_of(run)
    if parent is None:
        return f"  (parent {name!r} not found)"
    if is_root:
        return ""
    try:
        changes = config_changes(parent.compared_config(), resolved_view(config, run.read_metrics()))
    except (OSError, ValueError, yaml.YAMLError) as err:
        return f"  (not compared with its parent: {type(err).__name__})"
    return "  (" + (", ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, a, b in changes) or "same config") + ")"


def _short(value: Any) -> str:
    text = fmt_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
