"""Run folders: one folder per run holding its config, environment, checkpoints, latents, samples,
metrics, figures and report (layout in DESIGN.md), plus listing and comparing runs."""

from __future__ import annotations

import json
import logging
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latentatlas import config as config_mod
from latentatlas.config import RunConfig
from latentatlas.fileio import load_npz, locked, read_json, save_npz, write_json
from latentatlas.validate import check_finite, check_folder_name

log = logging.getLogger(__name__)

STAGES = ("train", "encode", "sample", "evaluate", "report")
RESOLVED_TRAIN_SETTINGS = ("device", "precision")   # "auto" resolved by training, recorded in metrics.json's train
AUTO_CHOICE = re.compile(r"auto \((?P<chosen>.+)\)")   # such a setting as compared_config() shows it


@dataclass
class Run:
    """A run folder.  Create one with :meth:`create`, open an existing one with :meth:`open`."""

    path: Path

    # -- creation -----------------------------------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, *, exist_ok: bool = False) -> "Run":
        """A new run folder ``runs_dir/name`` with config.yaml and env.json.  A folder whose training never
        wrote a checkpoint (a failed first attempt) is taken over; one with a checkpoint is refused unless
        ``exist_ok``."""
        name = config.name or default_run_name(config)
        check_folder_name("name", name)
        path = Path(config.runs_dir) / name
        if (path / "config.yaml").exists() and not exist_ok:
            if cls(path).checkpoint_path("last").exists():
                raise FileExistsError(f"run folder {str(path)!r} already exists; pick another name or use --resume")
            log.info("%s: its earlier attempt wrote no checkpoint; starting the run again", path)
        if config.parent and not (Path(config.runs_dir) / config.parent / "config.yaml").is_file():
            log.warning("parent: no run %r in %s yet; the report's diff and `runs tree` find it only once it is "
                        "there", config.parent, config.runs_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"runs_dir: cannot make the run folder {str(path)!r} ({err.strerror})") from None
        run = cls(path)
        config_mod.save(config, run.config_path)
        write_json(run.path / "env.json", environment(config))
        return run

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise FileNotFoundError(f"RUN: {str(path)!r} is not a run folder (no config.yaml)")
        return cls(path)

    # -- paths --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, which: str = "best") -> Path:
        return self.checkpoints_dir / f"{which}.pt"

    @property
    def weights_path(self) -> Path:
        """The file of the run's chosen weights, which later stages load: best.pt, else last.pt (which need
        not exist yet)."""
        best = self.checkpoint_path("best")
        return best if best.is_file() else self.checkpoint_path("last")

    @property
    def inverter_path(self) -> Path:
        """The inversion encoder of a model without one (written by the encode stage)."""
        return self.checkpoints_dir / "inverter.pt"

    @property
    def latents_path(self) -> Path:
        return self.path / "latents.npz"

    @property
    def samplers_dir(self) -> Path:
        return self.path / "samplers"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    def figure_path(self, name: str) -> Path:
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        return self.figures_dir / name

    def sampler_path(self, sampler_name: str) -> Path:
        return self.samplers_dir / f"{safe_name(sampler_name)}.pt"

    def samples_path(self, sampler_name: str) -> Path:
        return self.samples_dir / f"{safe_name(sampler_name)}.npz"

    # -- content ------------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        """The run's config (a config written by an older latentatlas is migrated on reading)."""
        return config_mod.from_dict(self.config_dict())

    def config_dict(self) -> dict[str, Any]:
        """config.yaml as written (never empty: latentatlas writes the whole resolved config)."""
        values = config_mod.read_yaml(self.config_path)
        if not values:
            raise ValueError(f"config {str(self.config_path)!r}: expected the run's resolved config, got an empty "
                             "file; restore it")
        return values

    def compared_config(self) -> dict[str, Any]:
        """The config that comparisons and lineage show: :func:`resolved_view` of config.yaml and metrics.json."""
        return resolved_view(self.config_dict(), self.read_metrics())

    def env(self) -> dict[str, Any]:
        p = self.path / "env.json"
        return read_json(p, "env") if p.exists() else {}

    def save_latents(self, **arrays: np.ndarray) -> Path:
        """Write latents.npz (with its content hash); codes must be finite."""
        check_finite(f"latents {str(self.latents_path)!r}", arrays)
        return save_npz(self.latents_path, **arrays)

    def load_latents(self) -> dict[str, np.ndarray]:
        """latents.npz, its content hash verified and its codes checked to be finite."""
        if not self.latents_path.is_file():
            raise FileNotFoundError(f"{self.latents_path}: no latents yet; run `latentatlas encode {self.path}` first")
        arrays = load_npz(self.latents_path, "latents")
        if "z_mean" not in arrays and "codes" not in arrays:
            raise ValueError(f"latents {str(self.latents_path)!r}: expected the arrays 'z_mean' or 'codes', got "
                             f"{sorted(arrays)}; run `latentatlas encode {self.path}` again")
        check_finite(f"latents {str(self.latents_path)!r}", arrays)
        return arrays

    def save_samples(self, sampler_name: str, images_nhwc: np.ndarray, labels: Any = None) -> Path:
        """Write samples as npz ``arr_0`` uint8 (N, H, W, C), the convention of common evaluators, with the
        class ``labels`` (N,) they were generated for, if any."""
        if images_nhwc.dtype != np.uint8 or images_nhwc.ndim != 4:
            raise ValueError(f"samples: expected uint8 (N, H, W, C), got {images_nhwc.dtype} {images_nhwc.shape}")
        arrays = {"arr_0": images_nhwc}
        if labels is not None:
            arrays["labels"] = np.asarray(labels, dtype=np.int64)
        return save_npz(self.samples_path(sampler_name), **arrays)

    def sample_names(self) -> list[str]:
        return sorted(p.stem for p in self.samples_dir.glob("*.npz")) if self.samples_dir.is_dir() else []

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} before any stage wrote it); a ValueError naming the file when it is damaged."""
        if not self.metrics_path.is_file():
            return {}
        metrics = read_json(self.metrics_path, "metrics")
        if not isinstance(metrics, dict) or not all(isinstance(v, dict) for v in metrics.values()):
            raise ValueError(f"metrics {str(self.metrics_path)!r}: expected a mapping of sections, got "
                             f"{type(metrics).__name__}; restore it or delete it")
        return metrics

    def update_metrics(self, section: str, values: dict[str, Any]) -> None:
        """Merge ``values`` into ``metrics.json[section]``: read, merge and atomic write under a lock, so
        stages running at once on one run keep each other's values."""
        with locked(self.path / ".metrics.lock"):
            metrics = self.read_metrics()
            metrics.setdefault(section, {}).update(values)
            write_json(self.metrics_path, metrics)

    def history(self) -> list[dict[str, Any]]:
        """Per-epoch training metrics (metrics.jsonl), oldest first."""
        if not self.history_path.is_file():
            return []
        lines = []
        for number, line in enumerate(self.history_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"history {str(self.history_path)!r}: line {number} is not JSON ({exc}); "
                                 "`latentatlas train --resume` rewrites it from the checkpoint") from None
        return lines

    def unfinished_training(self, metrics: dict[str, Any] | None = None) -> str | None:
        """None when the training finished (metrics.json has its train section) or has not started; else a
        sentence saying so: its checkpoints are those of a training stopped by Ctrl-C, an error or a kill, or
        still running."""
        metrics = self.read_metrics() if metrics is None else metrics
        if "train" in metrics or not self.checkpoint_path("last").is_file():
            return None
        epochs = [row["epoch"] for row in self.history() if isinstance(row.get("epoch"), int)]
        planned = self.config_dict().get("train", {}).get("epochs")
        return (f"the training did not finish: its weights are those of epoch {max(epochs, default=0)} of "
                f"{planned} (stopped by Ctrl-C, an error or a kill, or still running); `latentatlas train "
                f"{self.config_path} --resume` continues it")

    def parent(self) -> "Run | None":
        parent = self.config_dict().get("parent")
        if not parent:
            return None
        for candidate in (Path(parent), self.path.parent / parent):
            if (candidate / "config.yaml").is_file():
                return Run(candidate)
        return None


def safe_name(name: str) -> str:
    """A file-name-safe version of a sampler spec ('gmm:k=20' -> 'gmm_k-20')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("=", "-")).strip("_") or "unnamed"


def default_run_name(config: RunConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{config.data.name}-{config.model.family}-z{config.model.latent_dim}-{stamp}"


def environment(config: RunConfig | None = None) -> dict[str, Any]:
    """Versions, platform, device, git revision (and the config's seed), written as env.json and printed by
    ``latentatlas env`` for bug reports."""
    import torch

    import latentatlas
    from latentatlas.training.distributed import cpu_name, resolve_device
    from latentatlas.training.precision import resolve_precision

    def version(mod: str) -> str | None:
        try:
            return __import__(mod).__version__
        except Exception:  # pragma: no cover - optional packages
            return None

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip() or None
    except Exception:  # pragma: no cover - git missing
        rev = None
    device = resolve_device("auto")
    return {
        "latentatlas": latentatlas.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": version("scipy"),
        "sklearn": version("sklearn"),
        "cuda_available": torch.cuda.is_available(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "default_device": str(device),
        "default_precision": resolve_precision("auto", device),   # what train.precision auto picks there
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        "seed": None if config is None else config.seed,
        "git_revision": rev,
        "command": " ".join(sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def list_runs(runs_dir: str | Path) -> list[Run]:
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    return sorted((Run(p) for p in runs_dir.iterdir() if (p / "config.yaml").is_file()),
                  key=lambda r: r.config_path.stat().st_mtime)


def resolved_view(config: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's ``config`` (config.yaml's mapping) with each ``train`` setting left to "auto" shown with what
    training chose on the machine that ran it ("auto (bf16)", from ``metrics``, metrics.json's mapping), so
    that two runs of one config on different machines differ where they trained differently."""
    chosen = metrics.get("train", {})
    train = dict(config.get("train") or {})
    for key in RESOLVED_TRAIN_SETTINGS:
        if train.get(key) == "auto" and chosen.get(key):
            train[key] = f"auto ({chosen[key]})"
    return {**config, "train": train}


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
