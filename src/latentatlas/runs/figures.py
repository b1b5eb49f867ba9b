"""Figure helpers shared by every stage: image grids and line plots saved as PNG (matplotlib Agg).

Every PNG written into a run's ``figures/`` carries its source (run, stage, config hash) as PNG text chunks,
read back by the report for each caption.  The config hash identifies what determines the results: the
resolved config without ``name``, ``runs_dir``, ``parent`` and ``track`` (two runs made the same way share it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import yaml

from latentatlas.data.base import to_uint8
from latentatlas.fileio import atomic_path

RUN_KEY, STAGE_KEY, HASH_KEY = "latentatlas:run", "latentatlas:stage", "latentatlas:config_hash"
NOT_HASHED = ("name", "runs_dir", "parent", "track")
# figure-name prefix -> the stage that draws it (the first match wins)
FIGURE_STAGES = (("training_", "train"), ("data_", "train"), ("codebook_", "train"), ("reconstructions", "encode"),
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


def _as_uint8_nhwc(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Accept uint8 (N,C,H,W) / (N,H,W,C) or float (N,C,H,W) in [0,1]; return uint8 (N,H,W,C)."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            images = to_uint8(images)
        arr = images.cpu().numpy()
        return arr.transpose(0, 2, 3, 1) if arr.ndim == 4 else arr[..., None]
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 numpy or a tensor, got {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.shape[-1] not in (1, 3) and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)
    return arr


def image_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Tile N images into one uint8 (H', W', C) array, ``nrow`` images per row, white padding."""
    arr = _as_uint8_nhwc(images)
    n, h, w, c = arr.shape
    ncol = max(1, min(nrow, n))
    nrows = (n + ncol - 1) // ncol
    grid = np.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = arr[i]
    return grid


def save_image_grid(path: str | Path, images: torch.Tensor | np.ndarray, nrow: int = 8,
                    scale: int = 2) -> Path:
    """Save a grid of images as a PNG, upscaled by ``scale`` (nearest) so small digits stay readable."""
    from PIL import Image

    grid = image_grid(images, nrow=nrow)
    if grid.shape[-1] == 1:
        grid = grid[..., 0]
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", pnginfo=png_info(figure_source(path)))
    return path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Save a matplotlib figure as a PNG (creating the folder) and close it; in a run folder, the PNG carries
    its source (see :mod:`~latentatlas.runs.provenance`)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", metadata=figure_source(path) or None)
    pyplot().close(fig)
    return path


def _finish(fig, ax, path: str | Path, *, xlabel: str, ylabel: str, title: str, logy: bool, legend: bool) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def save_line_plot(path: str | Path, series: dict[str, Sequence[tuple[float, float]]], *, xlabel: str,
                   ylabel: str, title: str = "", logy: bool = False) -> Path:
    """Save a line plot of named (x, y) series as a PNG (whole-number ticks where every x is whole: epochs)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = pyplot().subplots(figsize=(5.5, 3.5), dpi=100)
    for name, points in series.items():
        if len(points):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if all(float(x).is_integer() for points in series.values() for x, _ in points):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return _finish(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy, legend=len(series) > 1)


def save_bar_plot(path: str | Path, series: dict[str, np.ndarray], *, xlabel: str, ylabel: str,
                  title: str = "", logy: bool = False) -> Path:
    """Grouped bars, one group per index (e.g. latent dimension), one bar per named series."""
    fig, ax = pyplot().subplots(figsize=(6.5, 3.4), dpi=100)
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=np.float64)
        ax.bar(np.arange(len(values)) + i * width, values, width=width, label=name)
    return _finish(fig, ax, path, xlabel=xlabel, ylabel=ylabel, title=title, logy=logy, legend=len(series) > 1)


def save_scatter(path: str | Path, points: np.ndarray, labels: np.ndarray | None = None, *, title: str = "") -> Path:
    """Scatter a 2-D or 3-D map (N, 2|3), coloured by integer labels (N,) when given."""
    fig = pyplot().figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot(projection="3d" if points.shape[1] == 3 else None)
    colour = None if labels is None else np.asarray(labels)
    coords = [points[:, i] for i in range(points.shape[1])]
    sc = ax.scatter(*coords, c=colour, cmap="tab10" if colour is not None else None, s=4, alpha=0.8)
    if colour is not None and len(np.unique(colour)) <= 20:
        fig.colorbar(sc, ax=ax, shrink=0.7, ticks=np.unique(colour))
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_distance_figure(path: str | Path, stats: dict) -> Path:
    """Left: latent vs pixel distance of random pairs; right: nearest-neighbour distance histograms
    (each space scaled by its median so both fit one axis)."""
    fig, (a, b) = pyplot().subplots(1, 2, figsize=(9, 3.6), dpi=100)
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
    return save_figure(fig, path)


def save_crop_figure(path: str | Path, originals: Sequence[np.ndarray], boxes: Sequence[tuple | None],
                     results: np.ndarray, *, title: str) -> Path:
    """Source images (H, W, C) uint8 with their crop box drawn (top row) above what the loader keeps,
    uint8 (N, h, w, C) (bottom row), each at its own pixel size."""
    from matplotlib.patches import Rectangle

    plt = pyplot()
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(2.0 * n, 4.2), squeeze=False)
    for i, (image, box) in enumerate(zip(originals, boxes)):
        axes[0, i].imshow(image.squeeze(), cmap="gray" if image.shape[-1] == 1 else None)
        if box is not None:
            top, bottom, left, right = box
            axes[0, i].add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False,
                                           edgecolor="red", linewidth=1.5))
        axes[0, i].set_title(f"source {image.shape[1]}x{image.shape[0]}", fontsize=8)
        axes[1, i].imshow(results[i].squeeze(), cmap="gray" if results.shape[-1] == 1 else None)
        axes[1, i].set_title(f"kept {results.shape[2]}x{results.shape[1]}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def save_health_figure(path: str | Path, history: list[dict]) -> Path:
    """Training health from the sample monitor's lines of metrics.jsonl: the Fréchet distance, precision
    and recall, and class coverage per epoch; epochs flagged as mode collapse are marked in red."""
    rows = [h for h in history if "monitor_frechet" in h]
    epochs = [h["epoch"] for h in rows]
    fig, axes = pyplot().subplots(1, 3, figsize=(12, 3.4), dpi=100)
    axes[0].plot(epochs, [h["monitor_frechet"] for h in rows], marker="o", markersize=3)
    axes[0].set_ylabel("Fréchet distance of prior samples")
    for key in ("monitor_precision", "monitor_recall"):
        if any(key in h for h in rows):
            axes[1].plot([h["epoch"] for h in rows if key in h], [h[key] for h in rows if key in h], marker="o",
                         markersize=3, label=key.split("_")[1])
    axes[1].set_ylim(0, 1.02)
    axes[1].set_ylabel("precision / recall")
    axes[1].legend()
    if any("monitor_classes_covered" in h for h in rows):
        axes[2].plot(epochs, [h.get("monitor_classes_covered") for h in rows], marker="o", markersize=3, color="C2")
        axes[2].set_ylabel("classes covered", color="C2")
        kl = axes[2].twinx()
        kl.plot(epochs, [h.get("monitor_class_kl") for h in rows], marker="s", markersize=3, color="C3")
        kl.set_ylabel("KL(real || samples) over classes", color="C3")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        for h in rows:
            if h.get("monitor_collapse"):
                ax.axvline(h["epoch"], color="red", alpha=0.3, linewidth=3)
    fig.tight_layout()
    return save_figure(fig, path)
