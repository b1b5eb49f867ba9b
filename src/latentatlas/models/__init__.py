"""Model families by name, and :func:`build_model` from a :class:`~latentatlas.config.ModelConfig`.

Every family is registered in :data:`MODELS` as a class called ``cls(config, image_shape)`` and follows the
interface in :mod:`latentatlas.models.base`.
"""

from __future__ import annotations

import math

from torch import nn

from latentatlas.config import ModelConfig
from latentatlas.registry import Registry

MODELS: Registry = Registry("model")

from latentatlas.models import ae as _ae  # noqa: E402,F401  (registers 'ae')
from latentatlas.models import vae as _vae  # noqa: E402,F401  (registers 'vae')
from latentatlas.models.ae import AE  # noqa: E402
from latentatlas.models.base import Phase, Posterior  # noqa: E402
from latentatlas.models.losses import LIKELIHOODS  # noqa: E402
from latentatlas.models.nets import ARCHITECTURES  # noqa: E402
from latentatlas.models.vae import VAE  # noqa: E402

__all__ = ["MODELS", "AE", "VAE", "Phase", "Posterior", "build_model", "check_model_config", "check_image_shape"]


def check_image_shape(image_shape: object) -> tuple[int, int, int]:
    """Validate (C, H, W) of positive ints and return it as a tuple."""
    try:
        shape = tuple(int(v) for v in image_shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"image_shape: expected (C, H, W) of ints, got {image_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape: expected (C, H, W) of positive ints, got {image_shape!r}")
    return shape  # type: ignore[return-value]


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"model.{name}: expected a positive int, got {value!r}")


def _non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"model.{name}: expected a finite number >= 0, got {value!r}")


def check_model_config(cfg: ModelConfig) -> None:
    """Raise a ValueError naming the field for any invalid value of ``cfg``."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg: expected a ModelConfig, got {type(cfg).__name__}")
    if cfg.family not in MODELS:
        raise ValueError(f"model.family: expected one of {MODELS.names()}, got {cfg.family!r}")
    _positive_int("latent_dim", cfg.latent_dim)
    _positive_int("width", cfg.width)
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"model.architecture: expected one of {list(ARCHITECTURES)}, got {cfg.architecture!r}")
    if cfg.likelihood not in LIKELIHOODS:
        raise ValueError(f"model.likelihood: expected one of {list(LIKELIHOODS)}, got {cfg.likelihood!r}")
    _non_negative("kl_weight", cfg.kl_weight)
    _non_negative("kl_warmup_epochs", cfg.kl_warmup_epochs)
    if not isinstance(cfg.options, dict):
        raise ValueError(f"model.options: expected a mapping, got {cfg.options!r}")


def build_model(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> nn.Module:
    """Build the family ``cfg.family`` for images of shape (C, H, W) after validating ``cfg``."""
    check_model_config(cfg)
    return MODELS.get(cfg.family)(cfg, check_image_shape(image_shape))
