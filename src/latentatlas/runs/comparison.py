"""Comparisons of runs as tables: ``runs diff A B`` (config diff and the change of every score, refused with
the reason where the protocols differ) and ``runs compare A B C ...`` (side by side), each with its
protocol as a footnote."""

from __future__ import annotations

from typing import Any

from latentatlas.runs.results import (Change, config_changes, describe_protocol, headline, sampler_specs,
                                      score_changes, scores)
from latentatlas.runs.store import Run, flatten
from latentatlas.runs.tables import Table, metric_label

HEADLINE_METRICS = ("frechet", "precision", "recall", "density", "coverage", "kid")
HEADLINE_KEYS = ("reconstruction.mse", "reconstruction.psnr")
SECTION_ORDER = ("evaluate", "reconstruction", "samplers", "train")


def section_rank(key: str) -> int:
    """Where a score's section comes in a comparison: sample quality first, then reconstruction, ..."""
    section = key.split(".", 1)[0]
    return SECTION_ORDER.index(section) if section in SECTION_ORDER else len(SECTION_ORDER)


def score_label(key: str, metrics: dict[str, Any]) -> str:
    """A score's name for a person: 'Fréchet distance (classifier features), gmm:k=10' for
    evaluate.gmm_k-10.frechet, 'interpolation lerp: midpoint Fréchet distance', ..."""
    parts = key.split(".")
    specs = sampler_specs(metrics)
    if parts[0] in ("evaluate", "samplers") and len(parts) >= 3:
        protocol = metrics.get("evaluate", {}).get(parts[1], {}).get("protocol", {})
        return f"{metric_label(parts[-1], protocol.get('extractor'))}, {specs.get(parts[1], parts[1])}"
    if parts[0] == "reconstruction":
        return metric_label(parts[-1])
    context = " ".join(parts[:-1])
    features = metrics.get(parts[0], {}).get("extractor") if isinstance(metrics.get(parts[0]), dict) else None
    return f"{context}: {metric_label(parts[-1], features)}"


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Keys whose value differs between the runs' flattened compared configs (name, parent and runs_dir left
    out)."""
    keys = sorted(set().union(*configs))
    return [k for k in keys if k not in ("name", "parent", "runs_dir")
            and any(c.get(k) != configs[0].get(k) for c in configs)]


def protocol_notes(runs: list[Run]) -> list[str]:
    """One footnote with the sample-quality protocol when the runs share it, else one per run."""
    protocols = {r.name: headline(r.read_metrics()).protocol for r in runs}
    described = {name: describe_protocol(p) for name, p in protocols.items() if p}
    if not described:
        return []
    if len(set(described.values())) == 1 and len(described) == len(runs):
        return [f"Protocol: {next(iter(described.values()))}."]
    return [f"Protocol of {name}: {text}." for name, text in described.items()] + \
        ["The runs were not scored the same way: compare their sample-quality numbers with care."]


def diff_table(old: Run, new: Run) -> Table:
    """Config values that differ, then every score with its change (new - old) or the reason it is not
    subtracted (different protocols, or present in one run only)."""
    rows: list[list[Any]] = [[f"config: {k}", _cell(a), _cell(b), ""]
                             for k, a, b in config_changes(old.compared_config(), new.compared_config())]
    metrics = {**old.read_metrics(), **new.read_metrics()}
    changes = sorted(score_changes(old, new), key=lambda c: (c.old is None or c.new is None, section_rank(c.key)))
    for change in changes:
        rows.append([score_label(change.key, metrics), change.old, change.new, _change_cell(change)])
    return Table(["quantity", old.name, new.name, f"change ({new.name} - {old.name})"], rows,
                 notes=protocol_notes([old, new]), title=f"{new.name} against {old.name}")


def compare_table(runs: list[Run], *, all_scores: bool = False) -> Table:
    """The runs side by side: the config keys that vary, then the headline scores (every score with
    ``all_scores``)."""
    if len(runs) < 2:
        raise ValueError(f"runs: expected at least 2 runs to compare, got {len(runs)}")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"runs: each run once, got {names}")
    configs = [flatten(r.compared_config()) for r in runs]
    rows: list[list[Any]] = [[f"config: {k}", *[_cell(c.get(k)) for c in configs]] for k in varying_keys(configs)]
    metrics = [r.read_metrics() for r in runs]
    per_run = [scores(m) for m in metrics]
    merged: dict[str, Any] = {}
    for m in metrics:
        merged = {**m, **merged}
    keys = sorted(dict.fromkeys(k for s in per_run for k in s), key=section_rank)
    if not all_scores:
        keys = [k for k in keys if k in HEADLINE_KEYS or
                (k.startswith("evaluate.") and k.rsplit(".", 1)[-1] in HEADLINE_METRICS)]
    rows += [[score_label(k, merged), *[s.get(k) for s in per_run]] for k in keys]
    return Table(["quantity", *names], rows, notes=protocol_notes(runs), title="runs side by side")


def _cell(value: Any) -> Any:
    """A config value in a table: a setting absent from (or null in) a run and an empty one read differently."""
    if isinstance(value, (list, dict)):
        return str(value)
    return "(not set)" if value is None else "(empty)" if value == "" else value


def _change_cell(change: Change) -> Any:
    return change.change if change.change is not None else change.reason
