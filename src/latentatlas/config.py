"""Run configuration: frozen dataclasses per component, YAML load/save and ``--set a.b=v`` overrides.

Strict: an unknown key (in YAML or in ``--set``) is an error that names it and lists the known keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from latentatlas.validate import check_fields, rule

SPLITS = ("train", "val", "test")   # a dataset's splits, in the order of their stored codes 0, 1, 2


@dataclass(frozen=True)
class DataConfig:
    name: str = "mnist"                 # a name in latentatlas.data.DATASETS
    root: str | None = None             # folder or file for datasets read from disk
    val_fraction: float = 0.1
    test_fraction: float = 0.1          # used only when the source defines no test split
    limit: int | None = None            # keep N images spread over the data set, the same for every seed
    image_size: int | None = None       # resize square images to this size (None: as stored)
    download: bool = False              # allow torchvision datasets to download
    options: dict = field(default_factory=dict)  # loader-specific options (e.g. celeba crop)
    split_seed: int | None = None       # seed of the split and of the networks that judge samples (classifier,
    #                                   attribute net); None: the run's seed.  Fix it to replicate a run over seeds


@dataclass(frozen=True)
class ModelConfig:
    """What every model family has.  Each family extends it with its own fields (``VAEConfig``,
    ``GANConfig``, ...; see :mod:`latentatlas.models`), so a family carries no other family's settings."""

    family: str = "vae"                 # a name in latentatlas.models.MODELS
    latent_dim: int = field(default=16, metadata=rule(low=1))
    architecture: str = field(default="conv", metadata=rule(choices=("conv", "mlp")))
    width: int = field(default=32, metadata=rule(low=1))  # first conv layer's channels (doubling per stage) / MLP width
    hidden_layers: int = field(default=2, metadata=rule(low=1))  # hidden layers of the MLP networks


PRECISIONS = ("fp32", "bf16", "fp16")   # train.precision: float32, or bfloat16 / float16 autocast; "auto" picks
#                                         one of them for the device (training.precision.resolve_precision)
LR_SCHEDULES = ("constant", "cosine")   # train.lr_schedule (training.schedule)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=20, metadata=rule(low=1))
    batch_size: int = field(default=128, metadata=rule(low=1))
    lr: float = field(default=1e-3, metadata=rule(low=0))   # a phase may set its own (e.g. a GAN's lr_generator)
    lr_schedule: str = field(default="constant", metadata=rule(choices=LR_SCHEDULES))  # cosine: every phase's
    #                                   lr decays to 0 along a half cosine over the planned epochs (or max_steps)
    weight_decay: float = field(default=0.0, metadata=rule(low=0))
    patience: int | None = field(default=5, metadata=rule(low=1))  # epochs without a better selection score
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    precision: str = field(default="auto", metadata=rule(choices=(*PRECISIONS, "auto")))  # mixed precision:
    #                                   bf16/fp16 autocast of the forward passes (weights stay float32); auto:
    #                                   bf16 on a CPU with bfloat16 units, else fp32 (GPUs included: it trained
    #                                   the shipped networks faster there)
    hflip: bool = False                 # mirror each training image left-right with probability 1/2 (faces,
    #                                   natural images; not digits or text)
    progress: bool = True
    max_steps: int | None = field(default=None, metadata=rule(low=1))  # stop after this many batches
    max_minutes: float | None = field(default=None, metadata=rule(low=0, strict=True))  # stop after this much
    #                                   time in training batches (a budget; not reproducible across machines)
    monitor_every: int | None = field(default=None, metadata=rule(low=1))  # sample-quality monitor every N epochs
    monitor_n: int = field(default=1000, metadata=rule(low=2))  # decoded prior draws per monitor evaluation
    monitor_patience: int | None = field(default=None, metadata=rule(low=1))  # monitor evaluations without a new best
    loss_growth_limit: float | None = field(default=1000.0, metadata=rule(low=1, strict=True))  # warn when a
    #                                   phase's batch loss exceeds this many times its first one (None: never)
    loss_growth_error: bool = False     # stop with an error instead of a warning when the loss grows so
    checkpoint_overhead: float | None = field(default=0.02, metadata=rule(low=0, high=1, strict=True))  # the
    #                                   most of the time that writing last.pt may take: when an epoch is shorter
    #                                   than a write / this share (a small data set on a fast GPU), last.pt is
    #                                   written after the first epoch that ends that long after the last write,
    #                                   and always at the end, on Ctrl-C and on an error (None: every epoch)


@dataclass(frozen=True)
class CodesConfig:
    """How codes are obtained for the latent tools: the model's encoder, or inversion of its decoder."""

    method: str = field(default="auto", metadata=rule(choices=("auto", "encoder", "inversion")))
    encoder_steps: int = field(default=1500, metadata=rule(low=0))  # inversion: steps training the encoder
    refine_steps: int = field(default=30, metadata=rule(low=0))     # inversion: per-image optimisation steps
    lr: float = field(default=0.03, metadata=rule(low=0, strict=True))  # inversion: refinement step size
    prior_weight: float = field(default=0.01, metadata=rule(low=0))  # inversion: weight of |z|^2 / d
    batch_size: int = field(default=256, metadata=rule(low=1))


@dataclass(frozen=True)
class SampleConfig:
    samplers: tuple = ()                # specs, e.g. "gmm:k=20,covariance=full"; none: the family's defaults
    n: int = field(default=1000, metadata=rule(low=1))
    codes: str = field(default="mean", metadata=rule(choices=("mean", "sample")))  # codes the samplers are fitted on
    #                                   (posterior means, or one posterior draw per image)


@dataclass(frozen=True)
class EvaluateConfig:
    metrics: tuple = ("frechet", "prdc", "kid", "classes", "attributes")  # names in metrics.evaluate.METRICS
    extractor: str = "auto"             # auto: classifier (labels), else inception (weights on disk), else
    #                                   celeba-attributes (attributes), else pixels (metrics.features.default_extractor)
    n_real: int = field(default=1000, metadata=rule(low=2))  # real images for the reference statistics
    split: str = field(default="test", metadata=rule(choices=SPLITS))  # the split they come from


@dataclass(frozen=True)
class RunConfig:
    name: str | None = field(default=None, metadata=rule(folder_name=True))  # run folder name (one folder
    #                                   inside runs_dir); default derived from the config and time
    runs_dir: str = "runs"
    seed: int = 0
    parent: str | None = None           # the run this one was derived from (for the report's diff)
    track: str | None = field(default=None, metadata=rule(choices=("tensorboard", "mlflow")))  # also log curves
    #                                   and scores to TensorBoard or MLflow (optional extras; off by default)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: default_model_config())
    train: TrainConfig = field(default_factory=TrainConfig)
    codes: CodesConfig = field(default_factory=CodesConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        """No samplers named: the model family's defaults (prior and gmm; categorical and pixelcnn on code grids)."""
        if not self.sample.samplers:
            from latentatlas.models import MODELS

            samplers = MODELS.get(self.model.family).model.default_samplers
            object.__setattr__(self, "sample", dataclasses.replace(self.sample, samplers=samplers))

    @property
    def data_seed(self) -> int:
        """The seed of the data split and of every network trained on it to judge samples (the dataset
        classifier, the attribute net): ``data.split_seed``, or the run's seed.  Replicates that vary only
        ``seed`` then share their split, reference statistics and feature space."""
        return self.seed if self.data.split_seed is None else self.data.split_seed


def build_section(cls: type, values: dict[str, Any], where: str) -> Any:
    """The dataclass ``cls`` built strictly from ``values`` (unknown keys and wrong types name ``where.key``)."""
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
        if hint is ModelConfig:
            kwargs[key] = model_config_from_dict(value or {}, path)
        elif is_dataclass(hint):
            kwargs[key] = build_section(hint, value or {}, path)
        elif hint in (tuple, "tuple") or getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        else:
            kwargs[key] = _coerce(value, hint, path)
    built = cls(**kwargs)
    check_fields(built, where)
    return built


TYPE_WORDS = {int: "an int", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Check a scalar against its annotation (int, float, str, bool, dict, or X | None); a float field also
    takes a number written as a string (YAML 1.1 reads ``1e-4`` as one)."""
    options = getattr(hint, "__args__", None) or (hint,)
    if value is None and type(None) in options:
        return None
    for typ in options:
        if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if typ is float and isinstance(value, str) and _float_or_none(value) is not None:
            return _float_or_none(value)
        if typ is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if typ in (str, bool, dict) and isinstance(value, typ):
            return value
    expected = " or ".join(TYPE_WORDS.get(t, "null" if t is type(None) else str(t)) for t in options)
    raise ValueError(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def default_model_config() -> ModelConfig:
    """The default model section: the VAE family's defaults."""
    return model_config_from_dict({}, "model")


def model_config_from_dict(values: dict[str, Any], where: str = "model") -> ModelConfig:
    """The family's own config dataclass (named by ``values['family']``, default 'vae') built from ``values``
    over the defaults of its config class; an unknown family or a key the family does not have is a ValueError."""
    from latentatlas.models import MODELS

    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(values).__name__} {values!r}")
    if "options" in values:
        values = migrate_model_values(values)
    name = values.get("family", "vae")
    if name not in MODELS:
        raise ValueError(f"{where}.family: expected one of {MODELS.names()}, got {name!r}")
    family = MODELS.get(name)
    known = {f.name for f in fields(family.config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown} for family {name!r}; expected some of {sorted(known)}")
    return build_section(family.config, {**values, "family": name}, where)


def migrate_model_values(values: dict[str, Any]) -> dict[str, Any]:
    """A model section written by latentatlas 0.1 (one config for AE and VAE with an ``options`` dict, kept
    in old run folders and checkpoints) as the family's own fields."""
    values = dict(values)
    options = dict(values.pop("options", None) or {})
    if "hidden_layers" in options:
        values["hidden_layers"] = options.pop("hidden_layers")
    if options:
        raise ValueError(f"model.options: unknown key(s) {sorted(options)}; options are now model fields")
    if values.get("family") == "ae":
        values.pop("kl_weight", None)
        values.pop("kl_warmup_epochs", None)
    return values


def from_dict(values: dict[str, Any]) -> RunConfig:
    return build_section(RunConfig, values, "")


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
    return from_dict(apply_overrides(read_yaml(path), overrides))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; FileNotFoundError, or a ValueError naming the file when it is not
    YAML or not a mapping."""
    path = Path(path)
    if path.is_dir():
        hint = f" (a run folder's config: {str(path / 'config.yaml')!r})" if (path / "config.yaml").is_file() else ""
        raise ValueError(f"config: expected a YAML file, got the folder {str(path)!r}{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"config: no such file {str(path)!r}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"config {str(path)!r}: expected YAML, got {_yaml_problem(exc)}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config {str(path)!r}: expected a mapping of sections, got {type(values).__name__}")
    return values


def _yaml_problem(exc: Exception) -> str:
    """A YAML parse error in one line: the problem and where it is."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"a syntax error{where} ({problem})"


def apply_overrides(values: dict[str, Any], overrides: list[str] | tuple[str, ...],
                    flag: str = "--set") -> dict[str, Any]:
    """Apply ``a.b=v`` strings (v read as YAML) to a nested dict; returns a new dict.  ``flag`` is the
    option the strings came from, named in errors."""
    import copy

    out = copy.deepcopy(values)
    for item in overrides:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"{flag}: expected key.path=value, got {item!r}")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{flag} {key}: {part!r} is not a section")
        node[parts[-1]] = read_scalar(raw, f"{flag} {key}")
    return out


def read_scalar(raw: str, name: str = "value") -> Any:
    """Read a command-line value as YAML, also taking ``1e-4`` as a float (YAML 1.1 reads it as a string);
    a ValueError naming ``name`` when it is not valid YAML."""
    try:
        value = yaml.safe_load(raw.strip())
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: expected a YAML value, got {raw!r}: {_yaml_problem(exc)}") from None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def save(config: RunConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, atomically."""
    from latentatlas.fileio import write_text

    write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


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
