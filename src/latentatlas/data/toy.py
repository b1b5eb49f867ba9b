"""A toy data set for checking GAN training: 2-D points from a ring of Gaussians (``ring``), the standard
mode-collapse benchmark (Metz et al. 2017, Srivastava et al. 2017), stored like images.

Each point (x, y) in [-RING_EXTENT, RING_EXTENT]^2 is a (2, 1, 1) "image" whose two pixels hold x and y
scaled to 0..255 (a step of 0.024, about a sixth of the default standard deviation's 3-sigma radius), so
the whole toolkit (MLP families, trainer, monitor) runs on it; labels are the mode indices.
"""

from __future__ import annotations

import torch

from latentatlas.config import DataConfig
from latentatlas.data.base import ImageDataset
from latentatlas.data.common import DATASETS, take_options
from latentatlas.rng import make_generator
from latentatlas.validate import check_number

RING_EXTENT = 3.0


def points_to_images(points: torch.Tensor) -> torch.Tensor:
    """Points (n, 2) in [-RING_EXTENT, RING_EXTENT] -> uint8 images (n, 2, 1, 1)."""
    scaled = (points.double() + RING_EXTENT) / (2 * RING_EXTENT)
    return scaled.clamp(0, 1).mul(255).round().to(torch.uint8).view(-1, 2, 1, 1)


def images_to_points(images: torch.Tensor) -> torch.Tensor:
    """Images (n, 2, 1, 1), uint8 or float in [0, 1] (decoded samples) -> points (n, 2) float64."""
    x = images.double() / 255 if images.dtype == torch.uint8 else images.double()
    return x.reshape(-1, 2) * (2 * RING_EXTENT) - RING_EXTENT


def ring_points(n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """n points (n, 2) float64 from an equal mixture of ``modes`` Gaussians on a circle, and their modes (n,)."""
    from latentatlas.metrics.modes import ring_centres

    mode = torch.randint(modes, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64) * std
    return ring_centres(modes, radius)[mode] + noise, mode


@DATASETS.register("ring")
def ring(cfg: DataConfig) -> ImageDataset:
    """``ring`` with options n (20,000), modes (8), radius (2.0), std (0.02) and seed (0); no files."""
    opts = take_options(cfg, n=20000, modes=8, radius=2.0, std=0.02, seed=0)
    check_number("data.options.n", opts["n"], low=1, integer=True)
    check_number("data.options.modes", opts["modes"], low=1, integer=True)
    check_number("data.options.radius", opts["radius"], low=0, high=RING_EXTENT - 0.5)
    check_number("data.options.std", opts["std"], low=0, strict=True)
    points, mode = ring_points(opts["n"], modes=opts["modes"], radius=float(opts["radius"]), std=float(opts["std"]),
                               generator=make_generator(int(opts["seed"])))
    return ImageDataset("ring", points_to_images(points), labels=mode,
                        class_names=[f"mode {i}" for i in range(opts["modes"])])
