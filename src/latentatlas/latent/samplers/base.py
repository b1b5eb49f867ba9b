"""The latent-sampler interface: scikit-learn conventions on torch tensors.

A sampler is built from keyword hyperparameters (``__init__`` only stores and checks them), fitted on
codes ``z: (n, d)`` with ``fit(z) -> self`` (fitted attributes end in ``_``), then draws
``sample(n, generator=g) -> (n, d)`` on the device and dtype of the fitted codes.  Fitted state is saved
with ``torch.save`` as a dict of tensors and primitives and loads with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from latentatlas.fileio import torch_load, torch_save
from latentatlas.registry import Registry
from latentatlas.rng import make_generator
from latentatlas.validate import check_number

log = logging.getLogger(__name__)

SAMPLERS: Registry[type["LatentSampler"]] = Registry("sampler")

FORMAT = "latentatlas-sampler/1"
_PRIMITIVES = (bool, int, float, str, type(None))


class NotFittedError(RuntimeError):
    """Raised when a sampler is used before ``fit``."""


def format_value(value: Any) -> str:
    """A hyperparameter value as it is written in a spec string (lists as ``a|b|c``)."""
    if isinstance(value, (list, tuple)):
        return "|".join(format_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def check_codes(z: Any, name: str = "z", *, dim: int | None = None, min_rows: int = 1) -> torch.Tensor:
    """Validate codes: a floating 2-D tensor (n, d) (a NumPy array is taken as one, sharing its memory),
    finite, with at least ``min_rows`` rows."""
    if isinstance(z, np.ndarray):
        z = torch.from_numpy(z)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor or NumPy array of shape (n, d), got {type(z).__name__}")
    if z.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor (n, d), got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {z.dtype}")
    if dim is not None and z.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} columns (the dimension the sampler was fitted on), "
                         f"got shape {tuple(z.shape)}")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name}: expected at least {min_rows} rows, got {z.shape[0]}")
    if z.shape[1] < 1:
        raise ValueError(f"{name}: expected at least one column, got shape {tuple(z.shape)}")
    bad = ~torch.isfinite(z)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).flatten()
        raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} non-finite entries "
                         f"(first in row {int(rows[0])})")
    return z


def default_generator(generator: torch.Generator | None, seed: int) -> torch.Generator:
    """The caller's generator, or a fresh CPU generator seeded with ``seed`` (fits are reproducible)."""
    return generator if generator is not None else make_generator(seed)


class LatentSampler:
    """Base class.  Subclasses set ``name``, ``defaults`` (hyperparameters) and implement ``_fit``/``_sample``."""

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # the value a parameter added later had in effect before it existed, for saved samplers without it
    saved_before: ClassVar[dict[str, Any]] = {}
    min_codes: ClassVar[int] = 1
    code_kind: ClassVar[str] = "continuous"     # 'discrete' for samplers of code grids (VQ-VAE)

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)} of {self.name!r}; "
                             f"valid: {', '.join(sorted(self.defaults)) or '(none)'}")
        for key, value in {**self.defaults, **params}.items():
            setattr(self, key, value)
        self._check_params()

    # -- hyperparameters -------------------------------------------------------------------------
    def _check_params(self) -> None:
        """Validate hyperparameters; subclasses raise ValueError naming the parameter."""

    def get_params(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.defaults}

    @property
    def spec(self) -> str:
        """``name:key=value,...`` with the hyperparameters that differ from the defaults."""
        changed = [f"{k}={format_value(v)}" for k, v in self.get_params().items() if v != self.defaults[k]]
        return self.name + (":" + ",".join(changed) if changed else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}{' fitted' if self.is_fitted else ''}>"

    # -- fitting ---------------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"sampler {self.name!r} is not fitted: call fit(z) before sampling or scoring")

    def fit(self, z: torch.Tensor, *, generator: torch.Generator | None = None, **options: Any) -> "LatentSampler":
        """Fit on codes ``z: (n, d)``; ``generator`` drives any randomness of the fit; returns self."""
        z = self.check_input(z, min_rows=self._min_rows())
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        self.n_codes_ = int(z.shape[0])
        self.device_ = str(z.device)
        self.dtype_ = str(z.dtype).removeprefix("torch.")
        self._fit(z, generator, **options)
        self.n_features_in_ = int(z.shape[1])  # set last: marks the sampler as fitted
        return self

    def check_input(self, z: Any, *, dim: int | None = None, min_rows: int = 1) -> torch.Tensor:
        """Validate codes for this sampler (continuous (n, d) here; grid samplers override)."""
        return check_codes(z, "z", dim=dim, min_rows=min_rows)

    def _min_rows(self) -> int:
        return self.min_codes

    def _fit(self, z: torch.Tensor, generator: torch.Generator | None) -> None:
        raise NotImplementedError

    @property
    def codes_device(self) -> torch.device:
        self._check_fitted()
        return torch.device(self.device_)

    @property
    def codes_dtype(self) -> torch.dtype:
        self._check_fitted()
        return getattr(torch, self.dtype_)

    # -- drawing and scoring ---------------------------------------------------------------------
    def sample(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> torch.Tensor:
        """Draw ``n`` codes: (n, d) on the fitted codes' device and dtype (CPU generators only)."""
        self._check_fitted()
        check_number("n", n, low=0, integer=True)
        if n == 0:
            return torch.empty(0, self.n_features_in_, device=self.codes_device, dtype=self.codes_dtype)
        return self._sample(int(n), generator, **options).to(device=self.codes_device, dtype=self.codes_dtype)

    def _sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def score_samples(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of each code: (n,)."""
        raise NotImplementedError(f"sampler {self.name!r} has no density: score_samples is not defined for it")

    def _check_query(self, z: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        self._check_fitted()
        z = self.check_input(z, dim=self.n_features_in_)
        return z.to(device=self.codes_device, dtype=dtype or z.dtype)

    def describe(self) -> dict[str, Any]:
        """A short JSON-able summary for the report."""
        self._check_fitted()
        return {"sampler": self.name, "spec": self.spec, "n_codes": self.n_codes_, "dim": self.n_features_in_,
                **self._describe()}

    def _describe(self) -> dict[str, Any]:
        return {}

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Fitted attributes (names ending in ``_``), tensors moved to the CPU."""
        self._check_fitted()
        state = {}
        for key, value in vars(self).items():
            if key.endswith("_") and not key.startswith("_"):
                state[key] = value.detach().cpu() if isinstance(value, torch.Tensor) else value
        return state

    def to(self, device: torch.device | str) -> "LatentSampler":
        """Move the fitted tensors to ``device`` (samples are then drawn there)."""
        self._check_fitted()
        for key, value in list(vars(self).items()):
            if key.endswith("_") and isinstance(value, torch.Tensor):
                setattr(self, key, value.to(device))
        self.device_ = str(torch.device(device))
        return self

    def save(self, path: str | Path) -> Path:
        """Write ``{format, name, params, state}`` with ``torch.save``; returns the path."""
        return torch_save({"format": FORMAT, "name": self.name, "params": self.get_params(),
                           "state": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path, *, map_location: torch.device | str = "cpu") -> "LatentSampler":
        """Load a saved sampler onto ``map_location`` (default CPU)."""
        data = torch_load(path, "sampler")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"path: {path} is not a saved latentatlas sampler (expected format {FORMAT})")
        target = SAMPLERS.get(data["name"])
        if cls is not LatentSampler and not issubclass(target, cls):
            raise ValueError(f"path: {path} holds a {data['name']!r} sampler, not a {cls.name!r} sampler")
        obj = target(**{**target.saved_before, **data["params"]})
        for key, value in data["state"].items():
            setattr(obj, key, value)
        return obj.to(map_location)
