"""The plot every study draws: one panel per question, values against the study's axis, with error bars
from repeats and vertical marks (e.g. the k that BIC picks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from latentatlas.runs.figures import pyplot, save_figure


def panel_plot(path: str | Path, rows: list[dict[str, Any]], x: str, panels: Sequence[tuple[str, Sequence[str]]],
               *, xlabel: str, logx: bool = False, logy: Sequence[str] = (), marks: dict[str, float] | None = None,
               series: str | None = None, title: str = "") -> Path:
    """A row of panels, one per ``(ylabel, value keys)``: each value key against ``x``, with ``KEY_sd``
    error bars when the rows carry them.  ``series`` splits the rows into one line per value of that key
    (e.g. per run); ``marks`` draws labelled vertical lines at given x; ``logx`` a log x axis, ``logy`` the
    ylabels of the panels with a log y axis (ticks as plain numbers)."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    groups: dict[Any, list[dict]] = {}
    for row in rows:
        groups.setdefault(row.get(series) if series else None, []).append(row)
    for ax, (ylabel, keys) in zip(axes[0], panels):
        for group, members in groups.items():
            members = sorted((r for r in members if r.get(x) is not None), key=lambda r: r[x])
            for key in keys:
                pts = [(r[x], r[key], r.get(f"{key}_sd") or 0.0) for r in members if r.get(key) is not None]
                if not pts:
                    continue
                xs, ys, sd = zip(*pts)
                label = " ".join(str(p) for p in (group, key if len(keys) > 1 else None) if p is not None)
                ax.errorbar(xs, ys, yerr=sd if any(sd) else None, marker="o", markersize=3, capsize=2,
                            label=label or None)
        for i, (name, at) in enumerate((marks or {}).items()):
            ax.axvline(at, color=f"C{i + 3}", linestyle="--", linewidth=1, label=name)
        if logx:
            ax.set_xscale("log")
        if ylabel in logy:
            ax.set_yscale("log")
            plain = FuncFormatter(lambda value, _: f"{value:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
