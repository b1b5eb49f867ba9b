"""``runs compare A B C ... --html out.html``: one self-contained page with the runs side by side: sample grids,
training curves, the metric table and a plot of each headline metric against each config key that varies.
The page holds its figures (data: URIs, each PNG carrying its source), so nothing else is written."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from latentatlas.fileio import write_text
from latentatlas.runs.comparison import compare_table, varying_keys
from latentatlas.runs.figures import HASH_KEY, RUN_KEY, STAGE_KEY, config_hash, pyplot
from latentatlas.runs.report_html import e, embedded_figure, page
from latentatlas.runs.results import Headline, headline
from latentatlas.runs.store import Run, flatten
from latentatlas.runs.tables import metric_label, to_html

SIDE_CSS = ("<style>.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1em}"
            ".side figure{margin:0}</style>")
MAX_KEYS_PLOTTED = 4
PLOT_SECTIONS = ("model", "train", "data", "codes", "seed", "sample", "evaluate")


def write_compare_page(runs: list[Run], path: str | Path) -> Path:
    """Write the comparison page of ``runs`` to ``path`` (and nothing else)."""
    path = Path(path)
    table = compare_table(runs)            # checks the runs first
    heads = {r.name: headline(r.read_metrics()) for r in runs}
    source = {RUN_KEY: ", ".join(r.name for r in runs), STAGE_KEY: "compare",
              HASH_KEY: ", ".join(config_hash(r.config_dict()) for r in runs)}
    parts = [SIDE_CSS, f"<h1>{len(runs)} runs side by side</h1>", _run_list(runs, path),
             "<h2>Scores</h2>", to_html(table), _samples(runs, heads), _curves(runs, source),
             _against_keys(runs, heads, source)]
    write_text(path, page(f"{', '.join(r.name for r in runs)} — latentatlas comparison", parts))
    return path


def _run_list(runs: list[Run], path: Path) -> str:
    items = []
    for run in runs:
        href = os.path.relpath(run.report_path.resolve(), path.resolve().parent).replace(os.sep, "/")
        link = f"<a href='{e(href)}'>{e(run.name)}</a>" if run.report_path.is_file() else e(run.name)
        parent = run.config_dict().get("parent")
        items.append(f"<li>{link} <span class='muted'>config {config_hash(run.config_dict())}"
                     f"{f' · derived from {e(parent)}' if parent else ''}</span></li>")
    return "<ul>" + "".join(items) + "</ul>"


def _samples(runs: list[Run], heads: dict[str, Headline]) -> str:
    """The best sampler's grid of every run side by side, then the prior sampling grids."""
    rows = []
    for role in ("best", "prior"):
        figures = []
        for run in runs:
            pick = getattr(heads[run.name], role)
            if not pick:
                continue
            grid = run.figures_dir / f"samples_{run.samples_path(pick[0]).stem}.png"
            if grid.is_file():
                caption = f"{run.name}: {pick[0]}, Fréchet distance {pick[1]['frechet']:.3g}"
                figures.append(embedded_figure(grid.read_bytes(), caption, f"{run.name}/figures/{grid.name}"))
        if figures:
            title = "Samples of each run's best sampler" if role == "best" else "Prior sampling"
            rows.append(f"<h3>{title}</h3><div class='side'>{''.join(figures)}</div>")
    return "<h2>Samples</h2>" + "".join(rows) if rows else ""


def _curves(runs: list[Run], source: dict[str, str]) -> str:
    """Each run's selection score (validation loss, or the Fréchet monitor) per epoch: one plot per kind of
    score, so that a VAE's loss and a GAN's Fréchet distance never share an axis."""
    by_score: dict[str, list[tuple[str, list]]] = {}
    for run in runs:
        key = run.read_metrics().get("train", {}).get("selection_metric", "val_loss")
        points = [(row["epoch"], row[key]) for row in run.history() if isinstance(row.get(key), (int, float))]
        if points:
            by_score.setdefault(key, []).append((run.name, points))
    if not by_score:
        return ""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(by_score), figsize=(6 * len(by_score), 3.6), dpi=100, squeeze=False,
                             layout="constrained")
    for ax, (key, curves) in zip(axes[0], by_score.items()):
        for name, points in curves:
            ax.plot(*zip(*points), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric_label(key))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    caption = "the score that picks best.pt, per epoch: " + ", ".join(metric_label(k) for k in by_score)
    return "<h2>Training curves</h2>" + embedded_figure(_png(fig, source), caption)


def _against_keys(runs: list[Run], heads: dict[str, Headline], source: dict[str, str]) -> str:
    """For each config key that varies (at most 4: the model's and training's first, settings of one number or
    word only), the headline metrics against its values."""
    values = {r.name: flatten(r.compared_config()) for r in runs}
    keys = sorted(varying_keys(list(values.values())),
                  key=lambda k: _plot_rank(k, [values[r.name].get(k) for r in runs]))
    if not keys:
        return ""
    metrics = _headline_values(runs, heads)
    if not metrics:
        return ""
    out = "<h2>Scores against what varies</h2>"
    for key in keys[:MAX_KEYS_PLOTTED]:
        xs = [values[r.name].get(key) for r in runs]
        out += embedded_figure(_against_one_key(key, xs, [r.name for r in runs], metrics, source),
                               f"headline scores against {key}")
    if len(keys) > MAX_KEYS_PLOTTED:
        out += f"<p class='muted'>Not plotted: {e(', '.join(keys[MAX_KEYS_PLOTTED:]))}.</p>"
    return out


def _plot_rank(key: str, values: list[Any]) -> tuple[int, str]:
    """Where a varying config key comes among the plots: what changes the model (model, train, data, codes)
    before how it was sampled and scored (whose differences the protocol notes already flag), lists last."""
    section = key.split(".", 1)[0]
    order = PLOT_SECTIONS.index(section) if section in PLOT_SECTIONS else len(PLOT_SECTIONS)
    return (order + (len(PLOT_SECTIONS) + 1 if any(isinstance(v, (list, dict)) for v in values) else 0), key)


def _headline_values(runs: list[Run], heads: dict[str, Headline]) -> dict[str, list[Any]]:
    features = next((h.features for h in heads.values() if h.features), None)
    fd = metric_label("frechet", features)
    inverted = any(h.codes_method == "inversion" for h in heads.values())
    mse = metric_label("mse") + (" (of inverted codes for models without an encoder)" if inverted else "")
    series = {f"{fd}, best sampler": [h.best[1]["frechet"] if h.best else None for h in heads.values()],
              f"{fd}, prior": [h.prior[1]["frechet"] if h.prior else None for h in heads.values()],
              "precision, best sampler": [h.best[1].get("precision") if h.best else None for h in heads.values()],
              "recall, best sampler": [h.best[1].get("recall") if h.best else None for h in heads.values()],
              mse: [h.reconstruction for h in heads.values()]}
    return {name: ys for name, ys in series.items() if any(y is not None for y in ys)}


def _against_one_key(key: str, xs: list[Any], names: list[str], metrics: dict[str, list[Any]],
                     source: dict[str, str]) -> bytes:
    plt = pyplot()
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    positions = xs if numeric else list(range(len(xs)))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3), dpi=100, squeeze=False,
                             layout="constrained")
    for ax, (label, ys) in zip(axes[0], metrics.items()):
        points = sorted((x, y, n) for x, y, n in zip(positions, ys, names) if y is not None)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
            for x, y, name in points:
                ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(key, fontsize=8)
        if not numeric:
            ax.set_xticks(positions, [str(x) for x in xs], fontsize=7, rotation=20)
        ax.grid(alpha=0.3)
    return _png(fig, source)


def _png(fig, source: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata=source)
    pyplot().close(fig)
    return buffer.getvalue()
