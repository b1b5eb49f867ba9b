"""Run configuration: frozen dataclasses per component, YAML load/save and ``--set a.b=v`` overrides.

Strict: an unknown key (in YAML or in ``--set``) is an error that names it and lists the known keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"                 # a name in latentatlas.data.DATASETS
    root: str | None = None             # folder or file for datasets read from disk
    val_fraction: float = 0.1
    test_fraction: float = 0.1          # used only when the source defines no test split
    limit: int | None = None            # keep the first N images (quick runs)
    image_size: int | None = None       # resize square images to this size (None: as stored)
    download: bool = False              # allow torchvision datasets to download
    options: dict = field(default_factory=dict)  # loader-specific options (e.g. celeba crop)


@dataclass(frozen=True)
class ModelConfig:
    family: str = "vae"                 # a name in latentatlas.models.MODELS
    latent_dim: int = 16
    architecture: str = "conv"          # conv | mlp
    width: int = 32                     # channels of the first conv layer (doubles per stage) / MLP width
    likelihood: str = "bernoulli"       # bernoulli (BCE) | gaussian (MSE)
    kl_weight: float = 1.0              # beta of a beta-VAE
    kl_warmup_epochs: float = 0.0       # linear KL warm-up from 0 to kl_weight
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 5            # early stopping on validation loss; None disables
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    progress: bool = True
    max_steps: int | None = None        # stop after this many optimizer steps (tests, quick runs)
    monitor_every: int | None = None    # Fréchet distance of prior samples every N epochs (None: off)
    monitor_n: int = 1000               # decoded draws per monitor evaluation
    monitor_patience: int | None = None # stop after this many monitor evaluations without a new best


@dataclass(frozen=True)
class SampleConfig:
    samplers: tuple = ("prior", "gmm")  # specs, e.g. "gmm:k=20,covariance=full"
    n: int = 1000
    codes: str = "mean"                 # mean | sample: which codes the samplers are fitted on


@dataclass(frozen=True)
class EvaluateConfig:
    metrics: tuple = ("frechet", "prdc", "kid")  # any names in latentatlas.metrics.evaluate.METRICS
    extractor: str = "classifier"
    n_real: int = 1000                  # real test images for reference statistics
    split: str = "test"


@dataclass(frozen=True)
class RunConfig:
    name: str | None = None             # run folder name; default derived from the config and time
    runs_dir: str = "runs"
    seed: int = 0
    parent: str | None = None           # the run this one was derived from (for the report's diff)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {type(values).__name__} {values!r}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, path)
        elif hint in (tuple, "tuple") or getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        else:
            kwargs[key] = _coerce(value, hint, path)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Check a scalar against its annotation (int, float, str, bool, dict, or X | None)."""
    options = getattr(hint, "__args__", None) or (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{path}: expected a value of type {hint}, got None")
    for typ in options:
        if typ is type(None):
            continue
        if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if typ is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if typ in (str, bool, dict) and isinstance(value, typ):
            return value
    raise ValueError(f"{path}: expected {hint}, got {type(value).__name__} {value!r}")


def from_dict(values: dict[str, Any]) -> RunConfig:
    return _build(RunConfig, values, "")


def to_dict(config: RunConfig) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML run config and apply ``key.sub=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {str(path)!r}")
    values = yaml.safe_load(path.read_text()) or {}
    return from_dict(apply_overrides(values, overrides))


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=v`` strings (v read as YAML) to a nested dict; returns a new dict."""
    import copy

    out = copy.deepcopy(values)
    for item in overrides:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--set: expected key.path=value, got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {part!r} is not a section")
        node[parts[-1]] = read_scalar(raw)
    return out


def read_scalar(raw: str) -> Any:
    """Read a command-line value as YAML, also taking ``1e-4`` as a float (YAML 1.1 reads it as a string)."""
    value = yaml.safe_load(raw.strip())
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def save(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flat list of (key.path, old value, new value) where two config dicts differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff(a, b, path + "."))
        elif a != b:
            out.append((path, a, b))
    return out
