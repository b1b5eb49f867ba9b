"""Model families by name: each family is a model class and its own config dataclass, registered together.

``MODELS.get("dcgan")`` is a :class:`Family`; :func:`model_config` makes its config from keyword values and
:func:`build_model` builds the model from a config.  A variant of a family is a config subclass with other
defaults (``dcgan`` is the GAN with conv nets), never a copied model class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from latentatlas.config import ModelConfig
from latentatlas.registry import Registry


@dataclass(frozen=True)
class Family:
    """A registered family: ``model(config, image_shape, n_classes)`` built from ``config`` instances."""

    name: str
    model: type
    config: type[ModelConfig]
    summary: str

    @property
    def code_kind(self) -> str:
        """'continuous' (code vectors) or 'discrete' (code grids), as the model class declares."""
        return self.model.code_kind


MODELS: Registry[Family] = Registry("model")


def register_family(name: str, model: type, config: type[ModelConfig], summary: str) -> Family:
    """Register ``model`` with its config class under ``name`` (the config's ``family`` default must be it)."""
    default = next(f.default for f in dataclasses.fields(config) if f.name == "family")
    if default != name:
        raise ValueError(f"family {name!r}: its config {config.__name__} has family default {default!r}")
    return MODELS.register(name)(Family(name, model, config, summary))


def model_config(family: str = "vae", **values: Any) -> ModelConfig:
    """The config of ``family`` with ``values`` over its defaults (checked like a YAML ``model:`` section)."""
    from latentatlas.config import model_config_from_dict

    return model_config_from_dict({"family": family, **values})


def check_image_shape(image_shape: object) -> tuple[int, int, int]:
    """Validate (C, H, W) of positive ints and return it as a tuple."""
    try:
        shape = tuple(int(v) for v in image_shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"image_shape: expected (C, H, W) of ints, got {image_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape: expected (C, H, W) of positive ints, got {image_shape!r}")
    return shape  # type: ignore[return-value]


def build_model(cfg: ModelConfig, image_shape: tuple[int, int, int], n_classes: int | None = None):
    """Build the family ``cfg.family`` for images (C, H, W) and, for conditional models, ``n_classes`` labels."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg: expected a model config (e.g. model_config('vae')), got {type(cfg).__name__}")
    if cfg.family not in MODELS:
        raise ValueError(f"model.family: expected one of {MODELS.names()}, got {cfg.family!r}")
    family = MODELS.get(cfg.family)
    if not isinstance(cfg, family.config):
        raise TypeError(f"cfg: family {cfg.family!r} takes a {family.config.__name__}, got {type(cfg).__name__}; "
                        f"make it with model_config({cfg.family!r}, ...)")
    return family.model(cfg, check_image_shape(image_shape), n_classes)
