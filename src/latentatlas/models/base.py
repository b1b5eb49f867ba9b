"""The model contract shared by every family (:class:`GenerativeModel`), its training phases, posteriors,
and batch-sharded noise for data-parallel training.

A model maps codes z (B, latent_dim) to images x float32 (B, C, H, W) in [0, 1] (``decode``); models with
an encoder also map images to a :class:`Posterior` (``encode``).  Training is a list of :class:`Phase`
(one for AE/VAE; discriminator then generator for a GAN), each with its optimizer settings; a phase's
loss takes a :class:`Batch` and returns ``(total, terms)``: ``terms`` maps names to detached scalars
for logging.  ``progress`` is the training position in epochs (float), used for warm-ups.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import nn

from latentatlas.rng import to_device
from latentatlas.validate import check_fields


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 when it is a 16-bit float (an output under mixed-precision autocast), else ``t``:
    losses and posteriors are computed in full precision whatever the training precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Posterior:
    """A diagonal Gaussian q(z|x) = N(mean, exp(logvar)); an AE's posterior has zero variance (logvar None).
    16-bit parameters (from autocast) are held as float32."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None = None) -> None:
        self.mean = full_precision(mean)
        self.logvar = None if logvar is None else full_precision(logvar)

    @property
    def std(self) -> torch.Tensor:
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw (B, d); the mean itself when the variance is zero."""
        if self.logvar is None:
            return self.mean
        eps = batch_randn(tuple(self.mean.shape), generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per row, shape (B,); zero for a deterministic posterior."""
        if self.logvar is None:
            return torch.zeros(self.mean.shape[0], device=self.mean.device, dtype=self.mean.dtype)
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)

    def kl_per_dim(self) -> torch.Tensor:
        """KL per latent dimension, shape (B, d)."""
        if self.logvar is None:
            return torch.zeros_like(self.mean)
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) per row, shape (B,)."""
        if self.logvar is None:
            raise ValueError("log_prob: a deterministic posterior has no density")
        return -0.5 * (((z - self.mean) ** 2) / self.logvar.exp() + self.logvar + math.log(2 * math.pi)).sum(dim=1)


@dataclass
class Batch:
    """One training batch: images ``x`` float32 (B, C, H, W) in [0, 1] and class labels ``y`` long (B,) or None."""

    x: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]


@dataclass(frozen=True)
class Optim:
    """Adam settings of one phase; ``None`` takes the run's ``train.lr`` / ``train.weight_decay``."""

    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float | None = None


@dataclass
class Phase:
    """One training step of a model, with its own optimizer.

    ``parameters()`` are what this phase's optimizer steps; ``loss(batch, *, generator, progress)`` returns
    ``(total, terms)``.  Phases run in order on every batch, except that a phase with ``repeat=r`` runs on
    r batches of each round of ``max(repeat)`` batches (the last r): a WGAN critic with ``repeat=5``
    before a generator with ``repeat=1`` makes five critic steps per generator step, each on fresh data.
    ``after_step()`` runs after each optimizer step of the phase (e.g. an EMA update).
    """

    name: str
    parameters: Callable[[], list[nn.Parameter]]
    loss: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    optim: Optim = field(default_factory=Optim)
    repeat: int = 1
    after_step: Callable[[], None] | None = None


class GenerativeModel(nn.Module):
    """The contract every family follows (AE, VAE, GANs, ...).

    Capabilities (class attributes): ``has_encoder`` (codes come from ``encode``; otherwise from inversion,
    see :mod:`latentatlas.latent.codes`), ``code_kind`` ('continuous' vectors (B, latent_dim)),
    ``normal_prior`` (whether ``prior_sample`` is N(0, I)), and ``selection_metric``: the key of a
    metrics.jsonl line that picks ``best.pt`` and drives early stopping (lower is better): ``val_loss`` for
    likelihood models, ``monitor_frechet`` for GANs; ``default_samplers``, the sampler specs a run uses when
    its config names none.

    Images are float32 (B, C, H, W) in [0, 1]; labels y are long (B,) in [0, n_classes) and required by
    conditional models (``self.conditional``).
    """

    has_encoder: ClassVar[bool] = False
    code_kind: ClassVar[str] = "continuous"
    selection_metric: ClassVar[str] = "val_loss"
    normal_prior: ClassVar[bool] = True     # prior_sample draws N(0, I) (the ``prior`` sampler's distribution)
    default_samplers: ClassVar[tuple[str, ...]] = ("prior", "gmm")   # a config's sample.samplers when it names none

    def __init__(self, config: Any, image_shape: tuple[int, int, int], n_classes: int | None = None) -> None:
        super().__init__()
        check_fields(config, "model")
        self.config = config
        self.image_shape = tuple(int(v) for v in image_shape)
        self.latent_dim = int(config.latent_dim)
        self.conditional = bool(getattr(config, "conditional", False))
        if self.conditional and not n_classes:
            raise ValueError(f"model.conditional: the {config.family!r} model is class-conditional and needs a "
                             f"dataset with class labels, but the dataset has none (n_classes={n_classes!r})")
        self.n_classes = int(n_classes) if n_classes else None

    # -- inputs ---------------------------------------------------------------------------------------
    def check_images(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x: expected shape (B, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")

    def check_latents(self, z: torch.Tensor) -> None:
        """Code vectors (B, latent_dim), else a ValueError naming the shape (not a matrix-size error deep inside)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z: expected codes of shape (B, {self.latent_dim}), got {tuple(z.shape)}")

    def check_labels(self, y: torch.Tensor | None, rows: int) -> torch.Tensor | None:
        """Labels for a conditional model (required, (rows,) in range); None for an unconditional one.  The
        range is not read within :func:`checked_labels`."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"y: the conditional {self.config.family!r} model needs class labels (B,), got None")
        read_range = rows and not _CHECKED_LABELS.get()
        if y.shape != (rows,) or (read_range and (int(y.min()) < 0 or int(y.max()) >= self.n_classes)):
            raise ValueError(f"y: expected {rows} labels in [0, {self.n_classes}), got shape {tuple(y.shape)}")
        return y.long()

    # -- the contract ---------------------------------------------------------------------------------
    @property
    def uses_labels(self) -> bool:
        """Whether training batches must carry class labels (conditional models, label-aware priors)."""
        return self.conditional

    @property
    def code_shape(self) -> tuple[int, ...]:
        """Shape of one code: (latent_dim,)."""
        return (self.latent_dim,)

    def prior_sample(self, n: int, *, generator: torch.Generator | None) -> torch.Tensor:
        """Codes (n, latent_dim) drawn from the model's prior (N(0, I) unless a family says otherwise)."""
        return batch_randn((n, self.latent_dim), generator=generator, device=self.device)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Codes (B, latent_dim) [and labels (B,)] -> images (B, C, H, W) in [0, 1]."""
        raise NotImplementedError

    def generate(self, n: int, *, generator: torch.Generator | None, y: torch.Tensor | None = None) -> torch.Tensor:
        """``decode(prior_sample(n))``: n images (n, C, H, W) in [0, 1]."""
        return self.decode(self.prior_sample(n, generator=generator), y)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Posterior:
        """q(z|x) for models with an encoder."""
        raise NotImplementedError(f"encode: the {self.config.family!r} model has no encoder; its codes come "
                                  "from inversion (codes.method: inversion)")

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def validation_loss(self, batch: Batch, *, generator: torch.Generator | None) -> \
            tuple[torch.Tensor, dict[str, torch.Tensor]] | None:
        """Held-out objective ``(total, terms)``, or None for models without one (GANs)."""
        return None

    def epoch_summary(self) -> dict[str, float]:
        """Numbers the model measured over the epoch's training batches (logged in metrics.jsonl), e.g. a
        VQ-VAE's codebook usage; called by the trainer at every epoch end, on every rank."""
        return {}

    def divergence(self, terms: dict[str, float]) -> str | None:
        """A sentence naming the symptom when a training phase step's logged ``terms`` (their values, without
        the loss) show divergence, else None."""
        return None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


# --- batch-sharded noise (data-parallel training) -----------------------------------------------------------

_CHECKED_LABELS: contextvars.ContextVar[bool] = contextvars.ContextVar("latentatlas_checked_labels", default=False)


@contextlib.contextmanager
def checked_labels() -> Iterator[None]:
    """Within this block models take the range of class labels as checked: the trainer checks its dataset's
    labels once, where reading each batch's would wait for a GPU every step."""
    token = _CHECKED_LABELS.set(True)
    try:
        yield
    finally:
        _CHECKED_LABELS.reset(token)


_SHARD: contextvars.ContextVar[tuple[int, int, int] | None] = contextvars.ContextVar("latentatlas_shard", default=None)


@contextlib.contextmanager
def batch_shard(start: int, stop: int, total: int) -> Iterator[None]:
    """Within this block, batch-shaped noise drawn by :func:`batch_randn` is rows ``[start:stop]`` of one
    draw for the whole global batch of ``total`` rows.

    The trainer enters it on each data-parallel rank (every rank holds the same generator state), so a
    VAE's reparameterisation noise on a rank equals the single-process noise for the same rows.
    """
    if not 0 <= start <= stop <= total:
        raise ValueError(f"batch_shard: expected 0 <= start <= stop <= total, got {start}, {stop}, {total}")
    token = _SHARD.set((start, stop, total))
    try:
        yield
    finally:
        _SHARD.reset(token)


def batch_randn(shape: tuple[int, ...], *, generator: torch.Generator | None, dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal draws of ``shape`` (B, ...) made on the CPU generator and moved to ``device``.

    Inside :func:`batch_shard` a draw whose first dimension is the local batch (stop - start) is taken
    from a draw for the global batch; otherwise this is ``torch.randn(shape, generator=generator)``.
    Families that draw per-row noise in a loss (reparameterisation, GAN latents) use it.
    """
    return _batch_draw(torch.randn, shape, generator, dtype, device)


def batch_rand(shape: tuple[int, ...], *, generator: torch.Generator | None, dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform [0, 1) draws of ``shape`` (B, ...), sharded like :func:`batch_randn` (augmentations, penalties)."""
    return _batch_draw(torch.rand, shape, generator, dtype, device)


def _batch_draw(draw: Callable[..., torch.Tensor], shape: tuple[int, ...], generator: torch.Generator | None,
                dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    shard = _SHARD.get()
    if shard is not None and len(shape) > 0 and shape[0] == shard[1] - shard[0]:
        start, stop, total = shard
        return to_device(draw((total, *shape[1:]), generator=generator, dtype=dtype)[start:stop], device)
    return to_device(draw(tuple(shape), generator=generator, dtype=dtype), device)
