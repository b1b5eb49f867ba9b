"""The explorer's view of one run: its codes, their 2-D maps, the directions a code can move along, the
fitted Gaussian mixtures, and decoding codes into images.

Tensors in, tensors out, no web framework: :mod:`latentatlas.explore.app` turns requests into calls of
these methods.  Every method checks its arguments with :mod:`latentatlas.validate` and names the
argument as the web API names it (``index``, ``z``, ``method``, ``steps`` ...), so a bad request and a
bad call read the same.  Loading goes through :func:`~latentatlas.runs.analysis_context.load_context`
(the model from best.pt, its code map, latents.npz and the dataset), like every latent analysis.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentatlas.data.base import SPLITS
from latentatlas.latent import attributes as attr
from latentatlas.latent import maps
from latentatlas.latent.geodesic import optimise_geodesic
from latentatlas.latent.hull import in_hull
from latentatlas.latent.interpolate import INTERPOLATORS, interpolate, steps as positions
from latentatlas.latent.samplers import GMM, load_sampler
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.analysis_context import load_context
from latentatlas.runs.results import sampler_specs
from latentatlas.runs.store import Run
from latentatlas.validate import check_choice, check_number

log = logging.getLogger(__name__)

MAP_METHODS = ("pca", "tsne", "umap")     # umap only when umap-learn is installed
GEODESIC = "geodesic"                     # optimised in the decoder's output metric (latent/geodesic.py)
GEODESIC_ITERS = 50                       # Adam steps (seconds for a 64x64 decoder on a CPU)
N_PRINCIPAL = 8                           # principal directions offered to the slider
MAX_STEPS = 64                            # frames of one interpolation strip
MAX_SAMPLES = 64                          # codes drawn by one sampling request
MAX_CODES = 256                           # codes given in one request (decode, hull)
MAX_AMOUNT = 10.0                         # slider range, in standard deviations of the codes along the direction


class Unavailable(LookupError):
    """What a request asks for does not exist in this run (no images, no mixture sampler)."""


@dataclass(frozen=True)
class Direction:
    """A unit ``vector`` (d,) the slider moves a code along; ``scale`` is the standard deviation of the
    training codes along it (the slider's unit); ``source`` is 'pca', 'attributes' or 'labels'."""

    name: str
    vector: torch.Tensor
    scale: float
    source: str


class Explorer:
    """One run opened for exploring.  ``points`` are the rows of latents.npz shown on the map (all of them,
    or ``max_points`` drawn with the run's seed); maps and hull flags are computed on first use and kept."""

    def __init__(self, run: Run | str | Path, *, device: torch.device | str | None = None, max_points: int = 5000,
                 model: torch.nn.Module | None = None) -> None:
        check_number("max_points", max_points, low=2, integer=True)
        self.ctx = load_context(run if isinstance(run, Run) else Run.open(run), device=device, model=model)
        self.run, self.seed = self.ctx.run, self.ctx.run.config.seed
        self.z = self.ctx.z                                                 # (N, d) float32
        self.z_train = self.z[torch.as_tensor(self.ctx.rows("train"))]    # (n_train, d): the hull's points
        n = self.z.shape[0]
        rows = torch.arange(n) if n <= max_points else \
            torch.randperm(n, generator=make_generator(derive_seed(self.seed, "explore")))[:max_points].sort().values
        self.points = rows.numpy()                                          # (P,) row indices
        self.directions = self._principal_directions() + self._attribute_directions()
        self.samplers = self._mixture_samplers()
        self._specs = sampler_specs(self.run.read_metrics())     # the specs the samplers were given, by file stem
        self._cache: dict[str, np.ndarray] = {}          # maps by method, and 'outside' (hull flags)
        self._locks: dict[str, threading.Lock] = {}
        self.decode(self.z[:1])                           # the first forward pass is the slow one: not on a click

    # -- what the run holds ---------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return int(self.z.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.ctx.model.image_shape)

    def map_methods(self) -> list[str]:
        return [m for m in MAP_METHODS if m in maps.available_methods()]

    def interpolation_methods(self) -> list[str]:
        return [*INTERPOLATORS.names(), GEODESIC]

    def color_options(self) -> list[str]:
        """What the map can be coloured by: the attributes, else the label; the split always."""
        latents = self.ctx.latents
        names = [str(n) for n in latents["attribute_names"]] if "attributes" in latents else []
        return names + (["label"] if "labels" in latents else []) + ["split"]

    def describe(self) -> dict:
        """A JSON-able summary: sizes, and the names every other method accepts."""
        split = self.ctx.split
        return {"run": self.run.name, "family": self.run.config.model.family, "latent_dim": self.latent_dim,
                "image_shape": list(self.image_shape), "n_codes": int(self.z.shape[0]), "n_points": len(self.points),
                "splits": {s: int((split == i).sum()) for i, s in enumerate(SPLITS)},
                "has_images": self.ctx.images is not None, "map_methods": self.map_methods(),
                "color_options": self.color_options(), "interpolation_methods": self.interpolation_methods(),
                "directions": [{"name": d.name, "source": d.source, "scale": d.scale} for d in self.directions],
                "samplers": sorted(self.samplers),
                "sampler_specs": {name: self._specs.get(name, s.spec) for name, s in sorted(self.samplers.items())}}

    # -- checks shared by the methods -------------------------------------------------------------------
    def check_index(self, name: str, index: int) -> int:
        check_number(name, index, low=0, high=self.z.shape[0] - 1, integer=True)
        return int(index)

    def check_codes(self, name: str, z: torch.Tensor | list) -> torch.Tensor:
        """Codes as a list of d numbers, or (n, d) / (d,) -> finite float32 (n, d)."""
        z = torch.as_tensor(z, dtype=torch.float32)
        z = z.reshape(1, -1) if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{name}: expected {self.latent_dim} numbers per code (the code dimension), "
                             f"got {z.shape[-1] if z.ndim else 0}")
        if z.shape[0] > MAX_CODES:
            raise ValueError(f"{name}: expected at most {MAX_CODES} codes per request, got {z.shape[0]}")
        bad = torch.nonzero(~torch.isfinite(z))
        if len(bad):
            check_number(f"{name}[{int(bad[0, -1])}]", float(z[tuple(bad[0])]))
        return z

    # -- codes and images -------------------------------------------------------------------------------
    def code(self, index: int) -> torch.Tensor:
        """The code of row ``index``: (d,)."""
        return self.z[self.check_index("index", index)]

    def image(self, index: int) -> torch.Tensor:
        """The dataset image of row ``index``: float (C, H, W) in [0, 1]."""
        if self.ctx.images is None:
            raise Unavailable("index: this run's dataset could not be loaded, so there are no images to show")
        return self.ctx.float_images(np.array([self.check_index("index", index)]))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n <= MAX_CODES, d) -> images float (n, C, H, W) in [0, 1], in one batched call."""
        return self.ctx.decode(self.check_codes("z", z))

    def label(self, index: int) -> dict:
        """Split, label and attributes of row ``index``."""
        i, latents = self.check_index("index", index), self.ctx.latents
        out: dict = {"index": i, "split": SPLITS[int(self.ctx.split[i])]}
        if "labels" in latents:
            out["label"] = int(latents["labels"][i])
        if "attributes" in latents:
            out["attributes"] = [str(n) for n, v in zip(latents["attribute_names"], latents["attributes"][i]) if v > 0]
        return out

    # -- paths, moves and samples ---------------------------------------------------------------------
    def interpolate(self, a: int, b: int, *, method: str = "slerp", steps: int = 9) -> torch.Tensor:
        """Codes of the path from row ``a`` to row ``b`` by ``method``: (steps, d)."""
        check_choice("method", method, self.interpolation_methods())
        check_number("steps", steps, low=2, high=MAX_STEPS, integer=True)
        z0 = self.z[self.check_index("a", a)][None]
        z1 = self.z[self.check_index("b", b)][None]
        if method == GEODESIC:
            lr = 0.01 * float(self.z_train.std(0).mean())      # steps in proportion to the codes' spread
            return optimise_geodesic(self.ctx.decode_grad, z0.to(self.ctx.device), z1.to(self.ctx.device),
                                     n_points=steps, iters=GEODESIC_ITERS, lr=lr)[0].cpu()
        return interpolate(method, z0, z1, positions(steps))[0]

    def direction(self, name: str) -> Direction:
        by_name = {d.name: d for d in self.directions}
        check_choice("direction", name, list(by_name))
        return by_name[name]

    def move(self, index: int, direction: str, amount: float) -> torch.Tensor:
        """Row ``index``'s code moved ``amount`` standard deviations along ``direction``: (d,)."""
        check_number("amount", amount, low=-MAX_AMOUNT, high=MAX_AMOUNT)
        code, d = self.code(index), self.direction(direction)
        return code + float(amount) * d.scale * d.vector

    def sample(self, sampler: str, component: int, *, n: int = 8, seed: int = 0) -> torch.Tensor:
        """``n`` codes from one component of a fitted mixture, drawn with ``seed``: (n, d)."""
        if not self.samplers:
            raise Unavailable("sampler: this run has no fitted Gaussian mixture; run `latentatlas sample RUN "
                              "--sampler gmm:k=10` first")
        check_choice("sampler", sampler, sorted(self.samplers))
        mixture = self.samplers[sampler]
        check_number("component", component, low=0, high=mixture.n_components_ - 1, integer=True)
        check_number("n", n, low=1, high=MAX_SAMPLES, integer=True)
        check_number("seed", seed, low=0, high=2**63 - 1, integer=True)
        return mixture.sample(n, generator=make_generator(seed), component=component).float().cpu()

    def components(self, sampler: str) -> list[dict]:
        """Weight, mean per-dimension variance, effective number of codes n_k, regularisation share of the
        trace and jitter of each component of ``sampler``."""
        check_choice("sampler", sampler, sorted(self.samplers))
        return [{"component": i, **c} for i, c in enumerate(self.samplers[sampler].describe()["components"])]

    # -- the map ---------------------------------------------------------------------------------------
    def outside_hull(self, z: torch.Tensor) -> np.ndarray:
        """Whether each code (n <= MAX_CODES, d) lies outside the convex hull of the training codes: bool (n,)."""
        return ~in_hull(self.check_codes("z", z), self.z_train)

    def map(self, method: str = "pca") -> np.ndarray:
        """2-D coordinates of the points by ``method``: (P, 2), computed once per method."""
        check_choice("method", method, self.map_methods())
        return self._cached(method, lambda: maps.embed(self.z[self.points], method, seed=self.seed))

    def points_outside_hull(self) -> np.ndarray:
        """bool (P,): the points outside the hull of the training codes (training codes never are)."""
        def compute() -> np.ndarray:
            outside = np.zeros(len(self.points), dtype=bool)
            held_out = np.flatnonzero(self.ctx.split[self.points] != SPLITS.index("train"))
            if held_out.size:
                outside[held_out] = ~in_hull(self.z[self.points[held_out]], self.z_train)
            return outside

        return self._cached("outside", compute)

    def _cached(self, key: str, compute) -> np.ndarray:
        """``compute()`` once per key; a slow key (t-SNE) does not hold up the others."""
        with self._locks.setdefault(key, threading.Lock()):
            if key not in self._cache:
                self._cache[key] = compute()
            return self._cache[key]

    def colors(self, color: str) -> tuple[np.ndarray, list[str]]:
        """Category of each point (P,) int and the categories' names, for ``color`` (an attribute, the label
        or the split)."""
        check_choice("color", color, self.color_options())
        latents, rows = self.ctx.latents, self.points
        if color == "split":
            return np.asarray(self.ctx.split[rows], dtype=np.int64), list(SPLITS)
        if color == "label":
            classes, codes = np.unique(np.asarray(latents["labels"])[rows], return_inverse=True)
            return codes.astype(np.int64), [str(c) for c in classes]
        column = [str(n) for n in latents["attribute_names"]].index(color)
        return (np.asarray(latents["attributes"])[rows, column] > 0).astype(np.int64), [f"not {color}", color]

    # -- set-up ----------------------------------------------------------------------------------------
    def _principal_directions(self) -> list[Direction]:
        centred = self.z_train.double() - self.z_train.double().mean(0)
        _, s, vt = torch.linalg.svd(centred, full_matrices=False)
        spread = s / max(1, centred.shape[0] - 1) ** 0.5
        return [Direction(f"pc{i + 1}", vt[i].float(), float(spread[i]), "PCA of the training codes")
                for i in range(min(N_PRINCIPAL, vt.shape[0]))]

    def _attribute_directions(self) -> list[Direction]:
        """The mean difference of the training codes with and without each attribute (or label)."""
        from latentatlas.runs.attribute_analysis import attribute_table

        try:
            table, names, source = attribute_table(self.ctx.latents)
        except ValueError:
            return []
        train = self.ctx.rows("train")
        out = []
        for column, name in enumerate(names):
            try:
                vector = torch.from_numpy(attr.mean_difference(self.z_train, table[train, column])).float()
            except ValueError as err:       # one value only among the training codes
                log.info("explore: no direction for %s (%s)", name, err)
                continue
            out.append(Direction(name, vector, float((self.z_train @ vector).std()), source))
        return out

    def _mixture_samplers(self) -> dict[str, GMM]:
        """The fitted Gaussian mixtures saved in samplers/, by file stem."""
        found = {}
        for path in sorted(self.run.samplers_dir.glob("*.pt")) if self.run.samplers_dir.is_dir() else []:
            if path.name.endswith(".fit.pt"):
                continue
            try:
                sampler = load_sampler(path)
            except (ValueError, KeyError, RuntimeError) as err:
                log.warning("explore: skipped %s (%s)", path, err)
                continue
            if isinstance(sampler, GMM):
                found[path.stem] = sampler
        return found
