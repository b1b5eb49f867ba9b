"""Run a study: settings from a config file and ``--set``, its cells (resuming finished ones), and its
outputs in ``RUN/studies/NAME/``.

Files of a study folder::

    config.yaml   study name, runs and every setting (``--config`` of a rerun reproduces the study)
    cells.jsonl   one finished cell per line (cell, its numbers, seconds, a fingerprint of the settings);
                  appended and fsynced as each cell ends, so an interrupted study resumes at the next cell
    table.csv, table.md, *.png
    study.json    question, findings, table, figure captions, protocol, wall time (what the report shows)
    summary.md    the question, the findings, the table and the figures on one page of Markdown
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from latentatlas.config import build_section, apply_overrides, read_yaml
from latentatlas.fileio import (atomic_path, content_hash, locked, read_json, remove_stale_temporaries, write_json,
                                write_text)
from latentatlas.runs.figures import config_hash
from latentatlas.runs.tables import Table, render
from latentatlas.studies.base import STUDIES, Study, StudyContext, StudySettings

log = logging.getLogger(__name__)

CELLS_FILE = "cells.jsonl"


@dataclass
class StudyResult:
    """What :func:`run_study` made: the folder, the rows (cell | numbers), the table and the findings."""

    folder: Path
    rows: list[dict[str, Any]]
    table: Table
    findings: list[str]
    figures: dict[str, str]
    seconds: float


def load_settings(name: str, config: str | Path | None = None, overrides: Sequence[str] = ()) -> StudySettings:
    """The settings of study ``name``: its defaults, then the ``settings:`` of a study config file, then
    ``key=value`` overrides; unknown keys and wrong types are errors naming ``NAME.key``."""
    study = STUDIES.get(name)
    values: dict[str, Any] = {}
    if config is not None:
        data = read_yaml(config) or {}
        if not isinstance(data, dict) or data.get("study", name) != name:
            raise ValueError(f"{config}: expected a config of study {name!r} (a mapping with study: {name}), "
                             f"got study {data.get('study') if isinstance(data, dict) else data!r}")
        values = dict(data.get("settings") or {})
    settings = build_section(study.Settings, apply_overrides(values, list(overrides)), name)
    if hasattr(settings, "check"):
        settings.check()
    return settings


def study_folder(ctx: StudyContext, name: str) -> Path:
    return ctx.folder / "studies" / name


def saved_fit(ctx: StudyContext, study: str, label: str, settings: dict[str, Any], sampler_class,
              fit: Callable[[torch.Tensor, Path], Any]):
    """A sampler a study fits once on the run's training codes, kept in ``ctx.cache`` and saved in the study
    folder as ``LABEL-TAG.pt``, TAG a hash of ``settings``, the run's seed and the codes: loaded from there
    when the same ones made it (a resumed study draws from the same fit), else ``fit(codes, checkpoint)``
    (``checkpoint``: a path the fit may resume from, removed once the sampler is saved)."""
    key = (study, label, config_hash(settings))
    if key not in ctx.cache:
        z = ctx.codes("train")
        tag = config_hash({**settings, "seed": ctx.seed, "codes": content_hash(z)})
        path, checkpoint = (study_folder(ctx, study) / f"{label}-{tag}{suffix}" for suffix in (".pt", ".fit.pt"))
        if path.is_file():
            sampler = sampler_class.load(path)
        else:
            sampler = fit(z, checkpoint)
            sampler.save(path)
            checkpoint.unlink(missing_ok=True)
        ctx.cache[key] = sampler
    return ctx.cache[key]


def run_study(name: str, contexts: Sequence[StudyContext], settings: StudySettings | None = None, *,
              fresh: bool = False) -> StudyResult:
    """Run study ``name`` on ``contexts`` (one per run; several only for multi-run studies), writing into
    the first context's folder.  Finished cells of an earlier call with the same settings are reused unless
    ``fresh``."""
    study = STUDIES.get(name)(settings)
    if not contexts:
        raise ValueError(f"study {name}: expected at least one run")
    if len(contexts) > 1 and not study.multi_run:
        raise ValueError(f"study {name}: expected one run (it studies one model), got {len(contexts)}; "
                         "run it once per run")
    by_name = {ctx.name: ctx for ctx in contexts}
    if len(by_name) != len(contexts):
        raise ValueError(f"study {name}: expected distinct runs, got {[c.name for c in contexts]}")
    folder = study_folder(contexts[0], name)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    fingerprint = _fingerprint(study, contexts)
    write_text(folder / "config.yaml", _config_text(study, contexts))
    done = {} if fresh else _finished_cells(folder / CELLS_FILE, fingerprint)
    started, rows, new = time.perf_counter(), [], 0
    cells = study.cells(list(by_name))
    for i, cell in enumerate(cells):
        key = _key(cell)
        if key not in done:
            log.info("study %s: cell %d/%d %s", name, i + 1, len(cells), key)
            t0 = time.perf_counter()
            values = study.run_cell(by_name[cell.get("run", contexts[0].name)], cell)
            done[key] = {"cell": cell, "values": values, "seconds": time.perf_counter() - t0,
                         "fingerprint": fingerprint}
            _append(folder / CELLS_FILE, done[key])
            new += 1
        rows.append({**cell, **done[key]["values"]})
    _rewrite_cells(folder / CELLS_FILE, [done[_key(c)] for c in cells])
    seconds = sum(done[_key(c)]["seconds"] for c in cells)
    result = _write_outputs(study, contexts, folder, rows, seconds)
    log.info("study %s: %d cells (%d new) in %.0f s", name, len(cells), new,
             time.perf_counter() - started)
    return result


def _write_outputs(study: Study, contexts: Sequence[StudyContext], folder: Path, rows: list[dict],
                   seconds: float) -> StudyResult:
    table = study.table(rows)
    findings = study.findings(rows)
    figures = study.plots(rows, folder)
    protocol = contexts[0].judge.protocol     # built from the disk caches when every cell was resumed
    write_text(folder / "table.csv", render(table, "csv"))
    write_text(folder / "table.md", render(table, "md"))
    write_json(folder / "study.json", {
        "study": study.name, "question": study.question, "runs": [c.name for c in contexts],
        "settings": study.settings.values(), "findings": findings, "figures": figures, "protocol": protocol,
        "seconds": seconds, "cells": len(rows),
        "table": {"title": table.title, "header": table.header, "rows": table.rows, "notes": table.notes}})
    write_text(folder / "summary.md", _summary(study, contexts, table, findings, figures, protocol, seconds))
    return StudyResult(folder, rows, table, findings, figures, seconds)


def _summary(study, contexts, table, findings, figures, protocol, seconds) -> str:
    lines = [f"# Study {study.name}: {', '.join(c.name for c in contexts)}", "", f"**Question.** {study.question}",
             "", "## Findings", "", *[f"- {f}" for f in findings], "", "## Table", "", render(table, "md").rstrip(),
             ""]
    lines += [f"![{caption}]({name})\n\n*{caption}*\n" for name, caption in figures.items()]
    if protocol:
        lines += ["## Protocol", "", *[f"- {k}: {v}" for k, v in protocol.items()], ""]
    lines += [f"Wall time of the cells: {seconds:.0f} s. Settings: `config.yaml`.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- resume
def _key(cell: dict[str, Any]) -> str:
    return json.dumps(cell, sort_keys=True, default=str)


def _fingerprint(study: Study, contexts: Sequence[StudyContext]) -> str:
    """What makes a finished cell reusable: the settings outside the grid and each run's config."""
    settings = {k: v for k, v in study.settings.values().items() if k not in study.settings.grid}
    runs = [config_hash(c.session.run.config_dict()) if c.session is not None else c.name for c in contexts]
    return config_hash({"study": study.name, "settings": settings, "runs": runs})


def _finished_cells(path: Path, fingerprint: str) -> dict[str, dict]:
    """Finished cells of ``path`` made with ``fingerprint``; a torn last line (a killed write) is skipped."""
    if not path.is_file():
        return {}
    done, other = {}, 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is incomplete (an interrupted write); that cell runs again", path, n)
            continue
        if record.get("fingerprint") == fingerprint:
            done[_key(record["cell"])] = record
        else:
            other += 1
    if done:
        log.info("%s: resuming with %d finished cell(s)", path, len(done))
    if other:
        log.info("%s: %d cell(s) were made with other settings and are not reused", path, other)
    return done


def _append(path: Path, record: dict) -> None:
    with locked(path.with_suffix(".lock")), open(path, "a") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _rewrite_cells(path: Path, records: list[dict]) -> None:
    with locked(path.with_suffix(".lock")), atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in records))


def _config_text(study: Study, contexts: Sequence[StudyContext]) -> str:
    import yaml

    return yaml.safe_dump({"study": study.name, "runs": [str(c.folder) for c in contexts],
                           "settings": {k: list(v) if isinstance(v, tuple) else v
                                        for k, v in study.settings.values().items()}}, sort_keys=False)


def read_study(folder: Path) -> dict[str, Any]:
    """study.json of a study folder (what the report shows)."""
    return read_json(folder / "study.json", "study results")
