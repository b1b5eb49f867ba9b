"""Figure helpers shared by every stage: image grids and line plots saved as PNG (matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def _as_uint8_nhwc(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Accept uint8 (N,C,H,W) / (N,H,W,C) or float (N,C,H,W) in [0,1]; return uint8 (N,H,W,C)."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            images = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def save_line_plot(path: str | Path, series: dict[str, Sequence[tuple[float, float]]], *, xlabel: str,
                   ylabel: str, title: str = "", logy: bool = False) -> Path:
    """Save a line plot of named (x, y) series as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=100)
    for name, points in series.items():
        if len(points):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
