"""The study contract, its registry, and what every study's cells work on.

A study answers one research question over a grid of cells (``{"k": 20, "seed": 1}``).  It declares:
``name``, ``question``, ``Settings`` (a frozen dataclass of its settings with defaults; the fields named in
``Settings.grid`` only choose which cells exist, so changing them keeps finished cells), and four methods:

- ``cells(runs) -> [cell]``: the grid, each cell a dict of JSON scalars (``"run"`` names the run it is for
  when the study takes several runs);
- ``run_cell(ctx, cell) -> {value: number}``: one cell's numbers; every random call takes
  ``ctx.generator(...)`` so a cell gives the same numbers whether it runs first or after a resume;
- ``table(rows) -> Table`` and ``plots(rows, folder) -> {file name: caption}``, rows being cell | values;
- ``findings(rows) -> [line]``: one-line answers computed from the same rows as the table.

:func:`~latentatlas.studies.runner.run_study` runs the cells, resumes, and writes the outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from latentatlas.registry import Registry
from latentatlas.rng import derive_seed, make_generator
from latentatlas.runs.tables import Table
from latentatlas.validate import rule


@dataclass(frozen=True)
class StudySettings:
    """Settings every study has; subclasses add theirs (bounds with ``field(metadata=rule(...))``)."""

    grid: ClassVar[tuple[str, ...]] = ()
    n_real: int = field(default=10000, metadata=rule(low=2))   # reference images from the run's evaluation split

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Study:
    """Base class of a study; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    question: ClassVar[str] = ""
    Settings: ClassVar[type[StudySettings]] = StudySettings
    multi_run: ClassVar[bool] = False        # one table across several runs (else one study per run)

    def __init__(self, settings: StudySettings | None = None) -> None:
        self.settings = settings if settings is not None else self.Settings()

    def cells(self, runs: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run_cell(self, ctx: "StudyContext", cell: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def table(self, rows: list[dict[str, Any]]) -> Table:
        raise NotImplementedError

    def plots(self, rows: list[dict[str, Any]], folder: Path) -> dict[str, str]:
        return {}

    def findings(self, rows: list[dict[str, Any]]) -> list[str]:
        raise NotImplementedError


STUDIES: Registry[type[Study]] = Registry("study")


def register(cls: type[Study]) -> type[Study]:
    """Class decorator: register a study under its ``name``."""
    return STUDIES.register(cls.name)(cls)


class StudyContext:
    """One run as its study's cells see it: codes per split, decode/encode, the :class:`Judge`, a folder for
    what the study trains, and generators derived from the run's seed.  Built from a run's session
    (:meth:`from_session`) or from arrays (tests: ``codes`` per split, ``decode`` defaults to identity)."""

    def __init__(self, *, name: str, seed: int, folder: Path, codes: dict[str, torch.Tensor] | None = None,
                 decode: Callable | None = None, encode: Callable | None = None, judge=None, session=None,
                 n_real: int = 10000) -> None:
        self.name, self.seed, self.folder, self.session = name, seed, Path(folder), session
        self._codes, self._decode, self._encode, self._judge, self.n_real = codes, decode, encode, judge, n_real
        self.cache: dict[str, Any] = {}      # what several cells of one study share (fitted once)

    @classmethod
    def from_session(cls, session, *, n_real: int = 10000) -> "StudyContext":
        """The context of a run's session; the study folders go inside its run folder."""
        return cls(name=session.run.name, seed=session.config.seed, folder=session.run.path, session=session,
                   n_real=n_real)

    def generator(self, *names: str | int) -> torch.Generator:
        return make_generator(derive_seed(self.seed, "study", *names))

    def codes(self, split: str) -> torch.Tensor:
        """Codes (n, d) float32 of ``split`` (train, val, test): the run's posterior means."""
        if self._codes is not None:
            return self._codes[split]
        if split not in self.cache.setdefault("codes", {}):
            from latentatlas.runs.pipeline import training_codes

            self.cache["codes"][split] = training_codes(self.session.run, "mean", split).float()
        return self.cache["codes"][split]

    def heldout_codes(self) -> torch.Tensor:
        """Codes for held-out likelihoods: the validation split, or the test split when there is none."""
        val = self.codes("val") if self._codes is None or "val" in self._codes else None
        return val if val is not None and val.shape[0] > 0 else self.codes("test")

    def labels(self, split: str) -> np.ndarray | None:
        """Class labels of ``split`` aligned with :meth:`codes`, or None."""
        if self.session is None:
            return self.cache.get("labels", {}).get(split)
        from latentatlas.data.base import SPLITS

        latents = self.session.run.load_latents()
        if "labels" not in latents:
            return None
        return np.asarray(latents["labels"])[latents["split"] == SPLITS.index(split)]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (n, d) -> images (n, C, H, W) float in [0, 1] on the CPU (identity for array contexts)."""
        if self.session is not None:
            return self.session.code_map.decode(z)
        return z if self._decode is None else self._decode(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (n, C, H, W) float in [0, 1] -> codes (n, d) (posterior means, or inverted)."""
        if self.session is not None:
            return self.session.code_map.encode(x)[0]
        if self._encode is None:
            raise ValueError(f"{self.name}: this context has no encoder")
        return self._encode(x)

    @cached_property
    def judge(self):
        """The :class:`~latentatlas.studies.judge.Judge` of this run (built on first use)."""
        if self._judge is None:
            from latentatlas.studies.judge import Judge

            self._judge = Judge.for_session(self.session, n_real=self.n_real, seed=self.seed)
        return self._judge

    def score_codes(self, z: torch.Tensor) -> dict[str, float]:
        """Every score of the images decoded from codes ``z`` (n, d)."""
        return self.judge.score(self.decode(z))


# ------------------------------------------------------------------------------------------- helpers
def summarise(rows: list[dict[str, Any]], by: tuple[str, ...], values: tuple[str, ...]) -> list[dict[str, Any]]:
    """Group ``rows`` by the keys ``by`` (first-seen order) and give per group the mean of each value, its
    standard deviation (``VALUE_sd``, ddof 1, 0 for one row) and the group size ``n``."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(by, key))
        for v in values:
            x = np.array([m[v] for m in members if m.get(v) is not None], dtype=float)
            entry[v] = float(x.mean()) if x.size else None
            entry[f"{v}_sd"] = float(x.std(ddof=1)) if x.size > 1 else 0.0
        entry["n"] = len(members)
        out.append(entry)
    return out


def best(rows: list[dict[str, Any]], value: str, *, lowest: bool = True) -> dict[str, Any]:
    """The row with the lowest (or highest) ``value``."""
    usable = [r for r in rows if r.get(value) is not None and np.isfinite(r[value])]
    if not usable:
        raise ValueError(f"no row has a finite {value!r}")
    return (min if lowest else max)(usable, key=lambda r: r[value])


def spearman(x: list[float] | np.ndarray, y: list[float] | np.ndarray) -> float:
    """Spearman's rank correlation of two equal-length sequences (nan when either is constant)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def mean_sd(row: dict[str, Any], value: str, digits: int = 3) -> str:
    """``"mean ± sd"`` of a summarised row (just the mean when there is one repeat)."""
    from latentatlas.runs.tables import fmt_number

    text = fmt_number(row[value], digits)
    sd = row.get(f"{value}_sd")
    return f"{text} ± {fmt_number(sd, digits)}" if sd and row.get("n", 1) > 1 else text
