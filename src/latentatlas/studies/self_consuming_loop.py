"""The self-consuming loop of Alemohammad et al., "Self-consuming generative models go MAD" (2023), generic
over a small model protocol, and the image model it runs on (an autoencoder plus a GMM on its codes).

A *model* (one generation) has ``sample(n, generator) -> x (n, ...)``, ``realism(x (n, ...)) -> (n,)`` (higher
is more typical; a log density) and ``fit(data (m, ...), generator) -> model``: the next generation, trained on
``data`` starting from this one (an autoencoder is fine-tuned from its weights; a Gaussian ignores them).  A
loop that checkpoints its generations also needs ``state() -> dict`` and ``restore(state) -> model``.

What generation t+1 is trained on (``n`` examples per generation, ``n_real = round(n * real_fraction)``):

- ``fully-synthetic``         n samples of generation t;
- ``synthetic-augmentation``  a fixed real set (n_real) plus n - n_real samples of generation t;
- ``fresh-data``              a fresh real draw each generation (n_real) plus n - n_real samples;
- ``interpolation``           decoded interpolations between random pairs of the fixed real set's codes
                              (``model.interpolate(x, m, generator)``), the most realistic n of ceil(n / lambda).

Sampling bias lambda in (0, 1]: draw ceil(m / lambda) samples and keep the m most realistic (lambda = 1 keeps
every draw).  Every random call uses ``generator(t, what)``, so a loop resumed at generation t draws what an
uninterrupted one draws.
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from latentatlas.fileio import torch_load, torch_save

log = logging.getLogger(__name__)

LOOPS = ("fully-synthetic", "synthetic-augmentation", "fresh-data", "interpolation")
MIXED = ("synthetic-augmentation", "fresh-data")


@dataclass(frozen=True)
class LoopSpec:
    """One loop: its kind, sampling bias ``lam``, ``generations`` G after generation 0, ``n`` training
    examples per generation, the real share of the mixed loops, and ``n_eval`` samples measured per generation."""

    loop: str
    lam: float = 1.0
    generations: int = 5
    n: int = 1000
    real_fraction: float = 0.5
    n_eval: int = 1000

    def __post_init__(self) -> None:
        if self.loop not in LOOPS:
            raise ValueError(f"loop: expected one of {LOOPS}, got {self.loop!r}")
        if not 0 < self.lam <= 1:
            raise ValueError(f"lambda: expected a sampling bias in (0, 1], got {self.lam!r}")

    @property
    def n_real(self) -> int:
        """Real examples in each training set (0 outside the mixed loops)."""
        return round(self.n * self.real_fraction) if self.loop in MIXED else 0


@dataclass
class RealData:
    """Real training data: ``fixed`` (m, ...) drawn once (the augmentation set, the interpolation pool) and
    ``fresh(m, generator) -> (m, ...)`` a new real draw (the fresh-data loop)."""

    fixed: torch.Tensor | None = None
    fresh: Callable[[int, torch.Generator], torch.Tensor] | None = None


Realism = Callable[[Any, torch.Tensor], torch.Tensor]


def model_realism(model, x: torch.Tensor) -> torch.Tensor:
    """The default realism: the model's own (its log density of x)."""
    return model.realism(x)


def most_realistic(x: torch.Tensor, m: int, scores: torch.Tensor) -> torch.Tensor:
    """The m rows of x (M, ...) with the highest scores (M,), in their drawn order."""
    if m >= x.shape[0]:
        return x
    return x[torch.topk(scores, m).indices.sort().values]


def pool_size(m: int, lam: float) -> int:
    """Draws needed to keep m with sampling bias lam: ceil(m / lam)."""
    return max(m, math.ceil(m / lam - 1e-9))


def biased_draw(model, m: int, lam: float, generator: torch.Generator,
                realism: Realism = model_realism) -> torch.Tensor:
    """m samples of ``model`` with sampling bias ``lam``: the most realistic m of ceil(m / lam) draws."""
    pool = model.sample(pool_size(m, lam), generator)
    return pool if lam >= 1 else most_realistic(pool, m, realism(model, pool))


class GenerationStore:
    """The latest finished generation of one loop: ``folder/latest.pt`` with the model state and the rows of
    generations 0..t, written with its content hash and a ``key`` (settings and run); a file made with another
    key, or a damaged one, is not used (the loop starts again from generation 0)."""

    def __init__(self, folder: str | Path, key: str) -> None:
        self.folder, self.key = Path(folder), key
        self.path = self.folder / "latest.pt"

    def load(self) -> tuple[int, dict, list[dict]] | None:
        if not self.path.is_file():
            return None
        try:
            saved = torch_load(self.path, "generation checkpoint")
        except ValueError as exc:
            log.warning("%s; the loop starts again from generation 0", exc)
            return None
        if saved.get("key") != self.key:
            log.info("%s was made with other settings or another run; the loop starts again", self.path)
            return None
        return int(saved["generation"]), saved["state"], list(saved["rows"])

    def save(self, generation: int, state: dict, rows: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        torch_save({"key": self.key, "generation": generation, "state": state, "rows": rows}, self.path)


def run_loop(model, spec: LoopSpec, real: RealData, generator: Callable[[int, str], torch.Generator],
             measure: Callable[[Any, torch.Tensor], dict[str, float]], *, realism: Realism = model_realism,
             store: GenerationStore | None = None,
             on_measured: Callable[[int, torch.Tensor], None] | None = None) -> list[dict[str, float]]:
    """Generations 0..G of one loop starting from ``model`` (generation 0); per generation the row
    ``measure(model_t, samples (n_eval, ...))`` (for the interpolation loop also ``interp_<key>``: the measure
    of its decoded interpolations before the filter).  Samples carry the loop's sampling bias, except in the
    interpolation loop, where ``lam`` is the share of interpolations its realism filter keeps.  With a
    ``store``, each generation's model is saved after it is measured and a rerun continues after the last one;
    ``on_measured(t, samples)`` is called once per measured generation."""
    first, rows = 0, []
    saved = store.load() if store is not None else None
    if saved is not None:
        first, state, rows = saved
        model = model.restore(state)
        log.info("self-consuming %s lambda=%g: resuming after generation %d", spec.loop, spec.lam, first)
    for t in range(first, spec.generations + 1):
        samples, train_part, interpolations = _outputs(model, spec, real, t, generator, realism)
        if t == len(rows):
            row = dict(measure(model, samples))
            if interpolations is not None:
                row.update({f"interp_{k}": v for k, v in measure(model, interpolations[:spec.n_eval]).items()})
            rows.append(row)
            if on_measured is not None:
                on_measured(t, samples)
            if store is not None and t > 0:
                store.save(t, model.state(), rows)
        if t < spec.generations:
            model = model.fit(_training_set(spec, real, train_part, t + 1, generator), generator(t + 1, "fit"))
    return rows


def _outputs(model, spec: LoopSpec, real: RealData, t: int, generator, realism: Realism):
    """Generation t's measured samples (n_eval, ...), its part of the next training set, and (interpolation
    loop) the unfiltered decoded interpolations."""
    if spec.loop == "interpolation":
        if real.fixed is None:
            raise ValueError("interpolation loop: expected a fixed real set to interpolate between")
        pool = model.interpolate(real.fixed, pool_size(spec.n, spec.lam), generator(t, "interpolate"))
        kept = pool if spec.lam >= 1 else most_realistic(pool, spec.n, realism(model, pool))
        return model.sample(spec.n_eval, generator(t, "sample")), kept, pool
    n_synthetic = spec.n - spec.n_real
    draws = biased_draw(model, max(n_synthetic, spec.n_eval), spec.lam, generator(t, "sample"), realism)
    return draws[:spec.n_eval], draws[:n_synthetic], None


def _training_set(spec: LoopSpec, real: RealData, synthetic: torch.Tensor, t: int, generator) -> torch.Tensor:
    """Generation t's training data (n, ...)."""
    if spec.loop == "synthetic-augmentation":
        if real.fixed is None or real.fixed.shape[0] < spec.n_real:
            raise ValueError(f"synthetic-augmentation loop: expected a fixed real set of at least {spec.n_real} rows")
        return torch.cat([real.fixed[:spec.n_real].to(synthetic), synthetic])
    if spec.loop == "fresh-data":
        if real.fresh is None:
            raise ValueError("fresh-data loop: expected a source of fresh real data")
        return torch.cat([real.fresh(spec.n_real, generator(t, "real")).to(synthetic), synthetic])
    return synthetic


# ------------------------------------------------------------------------------------ the image model
@dataclass(frozen=True)
class Recipe:
    """How an image generation is made: ``train`` (a TrainConfig: fine-tuning epochs, batch size, lr, device)
    in the scratch run folder ``folder`` (removed after each fit), the GMM's hyperparameters, the device of
    encoding and decoding, and how interpolations are placed (``midpoint`` or ``uniform`` t)."""

    train: Any
    folder: Path
    gmm: dict
    device: str = "cpu"
    interpolation: str = "midpoint"


class LatentPipeline:
    """One image generation: an autoencoder ``ae`` and a GMM fitted on its codes of the generation's training
    images.  ``sample`` decodes GMM draws to images (n, C, H, W) in [0, 1]; ``realism`` is the GMM log density
    of an image's code (the pipeline's own density, as truncation in the paper)."""

    def __init__(self, ae, gmm, recipe: Recipe) -> None:
        self.ae, self.gmm, self.recipe = ae, gmm, recipe

    @classmethod
    def on_images(cls, ae, images: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> "LatentPipeline":
        """The autoencoder ``ae`` with a GMM fitted on its codes of ``images`` (n, C, H, W) in [0, 1]."""
        from latentatlas.latent.samplers.gmm import GMM

        pipeline = cls(ae.eval(), None, recipe)
        pipeline.gmm = GMM(**recipe.gmm).fit(pipeline.encode(images), generator=generator)
        return pipeline

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        from latentatlas.latent.codes import encode_images

        return encode_images(self.ae, x, device=self.recipe.device)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        from latentatlas.latent.codes import decode_codes

        return decode_codes(self.ae, z, device=self.recipe.device)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.decode(self.gmm.sample(n, generator=generator))

    def realism(self, x: torch.Tensor) -> torch.Tensor:
        return self.gmm.score_samples(self.encode(x)).float()

    def interpolate(self, x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """n decoded interpolations (n, C, H, W) between random pairs of the codes of images x: midpoints, or
        at t ~ U(0, 1) per pair."""
        from latentatlas.latent.interpolate import random_pairs

        z = self.encode(x)
        pairs = random_pairs(z.shape[0], n, generator=generator)
        midpoint = self.recipe.interpolation == "midpoint"
        t = torch.full((n, 1), 0.5) if midpoint else torch.rand(n, 1, generator=generator)
        z0, z1 = z[pairs[:, 0]], z[pairs[:, 1]]
        return self.decode(z0 + t * (z1 - z0))

    def fit(self, data: torch.Tensor, generator: torch.Generator) -> "LatentPipeline":
        """The next generation: this autoencoder fine-tuned on images ``data`` (n, C, H, W) in [0, 1] for
        ``recipe.train.epochs`` epochs (the run's loss; a fresh optimizer), then a GMM on its codes of them."""
        from latentatlas.data.base import ImageDataset, to_uint8
        from latentatlas.training.trainer import train

        ae = copy.deepcopy(self.ae)
        images = to_uint8(data)
        dataset = ImageDataset("self-consuming", images, split=torch.zeros(images.shape[0], dtype=torch.int8))
        scratch = self.recipe.folder / "train"
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        train(ae, dataset, self.recipe.train, scratch, seed=seed)
        shutil.rmtree(scratch, ignore_errors=True)
        return LatentPipeline.on_images(ae, data, self.recipe, generator)

    def state(self) -> dict:
        from latentatlas.training.checkpoint import model_payload

        return {"autoencoder": model_payload(self.ae), "gmm_params": self.gmm.get_params(),
                "gmm_state": self.gmm.state_dict()}

    def restore(self, state: dict) -> "LatentPipeline":
        from latentatlas.latent.samplers.gmm import GMM
        from latentatlas.training.checkpoint import model_from_checkpoint

        gmm = GMM(**state["gmm_params"])
        for key, value in state["gmm_state"].items():
            setattr(gmm, key, value)
        ae = model_from_checkpoint(state["autoencoder"]).to(self.recipe.device)
        return LatentPipeline(ae.eval(), gmm, self.recipe)

    def with_recipe(self, **changes: Any) -> "LatentPipeline":
        return LatentPipeline(self.ae, self.gmm, replace(self.recipe, **changes))
