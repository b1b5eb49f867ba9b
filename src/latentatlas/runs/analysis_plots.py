"""Figure helpers of the latent analyses (interpolation, attributes, geometry) beyond the generic image
grids and line plots of :mod:`latentatlas.runs.figures`."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_distance_figure(path: str | Path, stats: dict) -> Path:
    """Left: latent vs pixel distance of random pairs; right: nearest-neighbour distance histograms
    (each space scaled by its median so both fit one axis)."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    a.scatter(stats["pair_latent"], stats["pair_pixel"], s=3, alpha=0.4)
    a.set_xlabel("latent distance")
    a.set_ylabel("pixel distance")
    a.set_title(f"random pairs: Pearson {stats['pearson']:.2f}, Spearman {stats['spearman']:.2f}")
    for key, label in (("nn_latent", "latent"), ("nn_pixel", "pixel")):
        v = np.asarray(stats[key])
        b.hist(v / np.median(v), bins=40, alpha=0.5, label=label)
    b.set_xlabel("nearest-neighbour distance / median")
    b.set_title(f"same nearest neighbour: {100 * stats['nn_agreement']:.0f}%")
    b.legend()
    fig.tight_layout()
    return _save(fig, path)


def save_bar_plot(path: str | Path, series: dict[str, np.ndarray], *, xlabel: str, ylabel: str,
                  title: str = "", logy: bool = False) -> Path:
    """Grouped bars, one group per index (e.g. latent dimension), one bar per named series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.4), dpi=100)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=np.float64)
        ax.bar(np.arange(len(values)) + i * width, values, width=width, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _plt().close(fig)
    return path
