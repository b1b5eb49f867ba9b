"""Every study of a folder of runs: a table (one row per run and study) and a gallery page (one section per
study with its question, findings, table and plots embedded, so the page is one self-contained file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from latentatlas.fileio import write_text
from latentatlas.runs.report_html import details, e, embedded_figure, page, table
from latentatlas.runs.tables import Table
from latentatlas.studies.runner import read_study


def study_folders(runs_dir: str | Path) -> list[Path]:
    """Folders RUN/studies/NAME holding a study.json, for every run in ``runs_dir`` (sorted)."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs_dir: expected a folder of run folders, got {str(root)!r}")
    return sorted(p.parent for p in root.glob("*/studies/*/study.json"))


def studies_table(runs_dir: str | Path) -> Table:
    """One row per study: run, study, cells, seconds, and its first finding."""
    rows = []
    for folder in study_folders(runs_dir):
        study = read_study(folder)
        findings = study.get("findings") or [""]
        rows.append([folder.parent.parent.name, study["study"], study.get("cells"), study.get("seconds"), findings[0]])
    return Table(["run", "study", "cells", "seconds", "first finding"], rows, title="Studies")


def write_gallery(runs_dir: str | Path, out: str | Path) -> Path:
    """One HTML page with every study of ``runs_dir`` (plots embedded)."""
    sections = [f"<h1>Studies in {e(runs_dir)}</h1>"]
    for folder in study_folders(runs_dir):
        sections.append(_section(folder, read_study(folder)))
    if len(sections) == 1:
        sections.append("<p>No studies yet: run <code>latentatlas study NAME RUN</code>.</p>")
    write_text(out, page(f"studies — {Path(runs_dir).name}", sections))
    return Path(out)


def _section(folder: Path, study: dict[str, Any]) -> str:
    t = study.get("table", {})
    figures = "".join(embedded_figure((folder / name).read_bytes(), caption)
                      for name, caption in study.get("figures", {}).items() if (folder / name).is_file())
    findings = "".join(f"<li>{e(line)}</li>" for line in study.get("findings", []))
    settings = ", ".join(f"{k}={v}" for k, v in study.get("settings", {}).items())
    protocol = ", ".join(f"{k}: {v}" for k, v in study.get("protocol", {}).items())
    return (f"<h2>{e(study['study'])} · {e(', '.join(study.get('runs', [])))}</h2>"
            f"<p><b>{e(study.get('question', ''))}</b></p><ul>{findings}</ul>{figures}"
            + details("table", table(t.get("header", []), t.get("rows", []))
                      + "".join(f"<p class=note>{e(n)}</p>" for n in t.get("notes", [])), open_=True)
            + f"<p class=note>settings: {e(settings)}<br>protocol: {e(protocol)}<br>"
              f"{study.get('cells', 0)} cells, {study.get('seconds', 0):.0f} s</p>")
