"""Notes and tags of a run: dated lines appended to ``notes.jsonl`` in the run folder (never rewritten),
shown in the report; the run's tags are the tag and untag lines replayed in order.

A note has a kind: ``note`` (anything), ``looked-at`` (what I looked at) or ``concluded`` (what I
concluded); the report gathers each kind under its own heading.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from latentatlas.runs.store import Run
from latentatlas.validate import check_choice

NOTE_KINDS = ("note", "looked-at", "concluded")
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,39}")


def notes_path(run: Run) -> Path:
    return run.path / "notes.jsonl"


def add_note(run: Run, text: str, kind: str = "note") -> dict[str, Any]:
    """Append a dated note of ``kind`` (note, looked-at, concluded); returns the entry written."""
    check_choice("kind", kind, NOTE_KINDS)
    text = (text or "").strip()
    if not text:
        raise ValueError("text: expected the note's text, got an empty string")
    return _append(run, {"kind": kind, "text": text})


def add_tags(run: Run, tags: list[str], *, remove: bool = False) -> list[str]:
    """Tag (or, with ``remove``, untag) the run; returns its tags afterwards."""
    for tag in tags:
        if not TAG_PATTERN.fullmatch(tag):
            raise ValueError(f"tag: expected letters, digits and _.:+- (at most 40, starting with a letter or "
                             f"digit), got {tag!r}")
    for tag in tags:
        _append(run, {"kind": "untag" if remove else "tag", "text": tag})
    return run_tags(run)


def read_notes(run: Run) -> list[dict[str, Any]]:
    """Every entry of notes.jsonl, oldest first (a line that cannot be read is skipped)."""
    path = notes_path(run)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "kind" in entry:
            entries.append(entry)
    return entries


def run_tags(run: Run, entries: list[dict[str, Any]] | None = None) -> list[str]:
    """The run's tags now, in the order they were first given."""
    tags: dict[str, None] = {}
    for entry in read_notes(run) if entries is None else entries:
        if entry["kind"] == "tag":
            tags[entry["text"]] = None
        elif entry["kind"] == "untag":
            tags.pop(entry["text"], None)
    return list(tags)


def _append(run: Run, entry: dict[str, Any]) -> dict[str, Any]:
    """One line, written with a single append (concurrent writers do not interleave within a line)."""
    entry = {"date": time.strftime("%Y-%m-%d %H:%M:%S%z"), **entry}
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(notes_path(run), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return entry
