"""The index of a runs folder: one summary per run folder (family, data, latent size, the status of every
stage, the headline score with its protocol, tags, date, parent), filtered and sorted for ``runs list``.

There is no index file: the summaries are read from the folders each time, so removing a folder (or
breaking one) never leaves the index wrong; an unreadable folder is listed with the reason.
"""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

import yaml

from latentatlas import config as config_mod
from latentatlas.runs.notes import notes_path, run_tags
from latentatlas.runs.results import brief_protocol, headline, scores
from latentatlas.runs.store import AUTO_CHOICE, Run, flatten, list_runs, resolved_view
from latentatlas.runs.tables import Table, fmt_number

STAGES = ("train", "encode", "sample", "evaluate", "interpolate", "attributes", "geometry", "report")
ANALYSIS_SECTIONS = {"interpolate": "interpolation", "attributes": "attributes", "geometry": "geometry"}
SORT_NAMES = ("name", "date", "frechet", "mse")


def stage_status(run: Run, metrics: dict[str, Any]) -> dict[str, str]:
    """Per stage: 'done', '' (not run), 'unfinished' (train: stopped or still running), 'k/n' (evaluate: k of n
    sample files scored) or 'stale': made from an earlier version of what comes before it (codes older than
    the model, whose training went on; samples older than the codes, and then their scores; a report older
    than the results or notes)."""
    samples = run.sample_names()
    evaluated = [n for n in samples if n in metrics.get("evaluate", {})]
    codes_stale = _older(run.latents_path, run.weights_path)   # the weights the codes are made with
    samples_stale = any(_older(run.samples_dir / f"{name}.npz", run.latents_path) for name in samples)
    status = {"train": "" if not run.checkpoint_path("last").is_file() else
              "unfinished" if run.unfinished_training(metrics) else "done",
              "encode": "" if not run.latents_path.is_file() else "stale" if codes_stale else "done",
              "sample": "" if not samples else "stale" if samples_stale else "done",
              "evaluate": "" if not evaluated else "stale" if samples_stale else
              "done" if len(evaluated) == len(samples) else f"{len(evaluated)}/{len(samples)}"}
    for stage, section in ANALYSIS_SECTIONS.items():
        status[stage] = "done" if section in metrics else ""
    status["report"] = _report_status(run)
    return status


def _older(path: Path, source: Path) -> bool:
    """Whether the file ``path`` was written before ``source`` (False when either is absent)."""
    try:
        return path.stat().st_mtime < source.stat().st_mtime
    except FileNotFoundError:
        return False


def _report_status(run: Run) -> str:
    if not run.report_path.is_file():
        return ""
    written = run.report_path.stat().st_mtime
    inputs = [p for p in (run.metrics_path, notes_path(run)) if p.is_file()]
    return "stale" if any(p.stat().st_mtime > written for p in inputs) else "done"


def summarize(run: Run) -> dict[str, Any]:
    """One run's row: name, family, data, latent_dim, stages, score, sampler, protocol, headline, tags, date,
    parent; ``error`` (and little else) when its config.yaml or metrics.json cannot be read."""
    row: dict[str, Any] = {"name": run.name, "path": str(run.path)}
    try:
        metrics = run.read_metrics()
        config = resolved_view(run.config_dict(), metrics)
    except (OSError, ValueError, yaml.YAMLError) as err:
        return {**row, "error": f"unreadable: {type(err).__name__}: {err}".splitlines()[0]}
    head = headline(metrics)
    row.update(family=config.get("model", {}).get("family"), data=config.get("data", {}).get("name"),
               latent_dim=config.get("model", {}).get("latent_dim"), stages=stage_status(run, metrics),
               score=head.best[1]["frechet"] if head.best else None, sampler=head.best[0] if head.best else None,
               protocol=brief_protocol(head.protocol) if head.best else "",
               mse=head.reconstruction, tags=run_tags(run), date=_date(run), parent=config.get("parent"),
               config=flatten(config), scores=scores(metrics))
    row["headline"] = (f"FD {fmt_number(row['score'])} ({row['sampler']})" if head.best else
                       f"MSE {fmt_number(row['mse'])}" if row["mse"] is not None else "")
    return row


def _date(run: Run) -> str:
    created = run.env().get("created") if (run.path / "env.json").is_file() else None
    if created:
        return created[:16].replace("T", " ")
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(run.config_path.stat().st_mtime))


def select(rows: list[dict[str, Any]], where: list[str] = (), tags: list[str] = ()) -> list[dict[str, Any]]:
    """The rows whose config matches every ``key=value`` of ``where`` (value read as YAML; a setting left to
    "auto" matches auto and what training chose) and that carry every tag of ``tags``."""
    readable = [r for r in rows if "error" not in r]
    known = set().union(*(r["config"] for r in readable)) if readable else set()
    for item in where:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--where: expected key=value (a config key, e.g. model.family=vae), got {item!r}")
        if readable and key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=5) or ["model.family", "data.name", "seed"]
            raise ValueError(f"--where: unknown config key {key!r}; expected a config key such as "
                             f"{', '.join(close)}")
        value = config_mod.read_scalar(raw)
        rows = [r for r in rows if "error" not in r and _equal(r["config"].get(key), value)]
    return [r for r in rows if all(t in r.get("tags", ()) for t in tags)]


def _equal(have: Any, want: Any) -> bool:
    """Whether a run's config value ``have`` matches ``want``; "auto (bf16)" matches auto and bf16."""
    auto = AUTO_CHOICE.fullmatch(have) if isinstance(have, str) else None
    if auto is not None:
        return want in ("auto", have, auto["chosen"])
    if isinstance(have, (int, float)) and isinstance(want, (int, float)) and not isinstance(have, bool):
        return float(have) == float(want)
    return have == want or str(have) == str(want)


def sort_rows(rows: list[dict[str, Any]], key: str | None) -> list[dict[str, Any]]:
    """Rows sorted by ``key`` (name, date, frechet: the headline Fréchet distance, mse, or any dotted score of
    metrics.json such as evaluate.prior.recall; a leading '-' sorts descending); rows without it go last."""
    if not key:
        return rows
    descending, name = key.startswith("-"), key.lstrip("-")

    def value(row: dict[str, Any]) -> Any:
        if name in ("name", "date"):
            return row.get(name)
        return row.get("score") if name == "frechet" else row.get(name) if name == "mse" \
            else row.get("scores", {}).get(name)

    present = [r for r in rows if value(r) is not None]
    if rows and not present and name not in SORT_NAMES:
        known = difflib.get_close_matches(name, sorted(set().union(*(r.get("scores", {}) for r in rows))), n=5)
        raise ValueError(f"--sort: no run has a score {name!r}; expected one of {', '.join(SORT_NAMES)} or a "
                         f"score of metrics.json such as {', '.join(known) or 'evaluate.prior.recall'}")
    present.sort(key=value, reverse=descending)
    return present + [r for r in rows if value(r) is None]


def check_runs_dir(runs_dir: str | Path) -> None:
    """A FileNotFoundError naming ``runs_dir`` when it is not a folder."""
    if not Path(runs_dir).is_dir():
        raise FileNotFoundError(f"FOLDER: no such folder {str(runs_dir)!r} (the folder holding the run folders)")


def list_rows(runs_dir: str, *, where: list[str] = (), tags: list[str] = (), sort: str | None = None) -> list[dict]:
    """Summaries of the runs in ``runs_dir``, filtered and sorted (see :func:`select`, :func:`sort_rows`)."""
    check_runs_dir(runs_dir)
    return sort_rows(select([summarize(r) for r in list_runs(runs_dir)], where, tags), sort)


def list_table(rows: list[dict[str, Any]], *, wide: bool = False) -> Table:
    """The rows as a table: in the terminal one 'stages' column naming the stages run; ``wide`` (exports) one
    column per stage."""
    stage_header = list(STAGES) if wide else ["stages run"]
    header = ["run", "family", "data", "latent", *stage_header, "Fréchet distance", "best sampler", "protocol",
              "tags", "date", "parent"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["name"], r["error"], *[""] * (len(header) - 2)])
            continue
        stages = [r["stages"][s] for s in STAGES] if wide else \
            [" ".join(s if v == "done" else f"{s}({v})" for s, v in r["stages"].items() if v)]
        body.append([r["name"], r["family"], r["data"], r["latent_dim"], *stages, r["score"], r["sampler"] or "",
                     r["protocol"], " ".join(r["tags"]), r["date"], r["parent"] or ""])
    return Table(header, body, title="")


def rows_json(rows: list[dict[str, Any]]) -> str:
    """The rows as JSON (without the flattened config and scores)."""
    return json.dumps([{k: v for k, v in r.items() if k not in ("config", "scores")} for r in rows], indent=2)
