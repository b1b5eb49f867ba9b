"""How a speed benchmark measures and says what it measured (issue 14): ``protocol`` prints the settings
(sizes, dtypes), threads, library versions, commit and date; ``alternate`` runs ours and the alternative in
turn ``--repeats`` times, prints every run, the median (min, max) of each and the ratio of the medians, with
the machine's load average at its start and end so that a run on a loaded machine shows in its own output."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]

Measure = float | tuple[float, str]   # a value, or a value and a note printed beside it


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_repeats(parser: argparse.ArgumentParser, default: int = 5) -> None:
    """--repeats: alternating runs of every implementation (at least 1)."""
    parser.add_argument("--repeats", type=positive_int, default=default,
                        help=f"alternating runs of each implementation; median, min and max (default {default})")


def add_device(parser: argparse.ArgumentParser) -> None:
    """--device: where latentatlas computes (the alternative it is measured against keeps its own place)."""
    parser.add_argument("--device", default="cpu",
                        help="where latentatlas computes: cpu, cuda or cuda:N (default cpu); the library it is "
                             "measured against runs where it always runs")


def synchronize() -> None:
    """Wait for queued CUDA work, so that a wall-clock time covers it (nothing to do without CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def load_average() -> str:
    """os.getloadavg() over 1, 5 and 15 minutes, with the CPU count to read it against."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} CPUs"


def threads() -> str:
    """torch's intra-op threads (when torch is imported) and every loaded BLAS / OpenMP pool (threadpoolctl)."""
    parts = [f"torch {sys.modules['torch'].get_num_threads()}"] if "torch" in sys.modules else []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ", ".join(parts + ["BLAS pools unknown (no threadpoolctl)"])
    for pool in threadpool_info():
        owner = Path(pool["filepath"]).parent
        owner = owner.parent.name if owner.name == "lib" else owner.name.removesuffix(".libs")
        parts.append(f"{pool['internal_api']} {pool['num_threads']} ({owner})")
    return ", ".join(parts)


def versions(packages: list[str] | tuple[str, ...]) -> str:
    """'name version' for each distribution name; 'absent' where it is not installed."""
    def one(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"
    return ", ".join(f"{name} {one(name)}" for name in packages)


def commit() -> str:
    """The checkout's short commit, '+changes' when the code in src/ or bench/ differs from it (RESULTS.md,
    where the figures are written, does not count); '?' outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        changed = git("status", "--porcelain", "--", "src", "bench", ":!bench/RESULTS.md")
        return git("rev-parse", "--short", "HEAD") + ("+changes" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def protocol(title: str, settings: dict[str, object], packages: tuple[str, ...]) -> None:
    """Print what is measured: ``title``, the settings (sizes, dtypes, seeds...), the thread pools of the
    libraries imported so far, the versions of ``packages``, the commit, the date and time, and the machine."""
    print(title)
    print("protocol: " + "; ".join(f"{key}: {value}" for key, value in settings.items()))
    print(f"  threads: {threads()}")
    print(f"  versions: python {platform.python_version()}, {versions(packages)}; latentatlas commit {commit()}")
    print(f"  {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, {platform.machine()} "
          f"{platform.system()}, {os.cpu_count()} CPUs: {cpu()}{gpu()}", flush=True)


def gpu() -> str:
    """'; GPU <name> (torch CUDA <version>)' when torch sees a GPU, else ''."""
    import torch

    if not torch.cuda.is_available():
        return ""
    return f"; GPU {torch.cuda.get_device_name()} (torch CUDA {torch.version.cuda})"


ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")   # environment settings that cap the kernels torch runs


def cpu() -> str:
    """The CPU's model name, its bfloat16 units (/proc/cpuinfo's flags), the vector ISA of torch's kernels, what
    ``train.precision: auto`` resolves to on it, and any ISA cap set in the environment."""
    import torch

    from latentatlas.training.distributed import cpu_flags, cpu_name
    from latentatlas.training.precision import resolve_precision

    flags = cpu_flags()
    units = "unknown" if flags is None else ", ".join(sorted(flags & {"amx_bf16", "avx512_bf16"})) or "none"
    parts = [f"{cpu_name() or 'model unknown'}, bf16 units: {units}",
             f"torch kernels {torch.backends.cpu.get_cpu_capability()}, train.precision auto -> "
             f"{resolve_precision('auto', torch.device('cpu'))}"]
    parts += [f"{name}={os.environ[name]}" for name in ISA_CAPS if name in os.environ]
    return "; ".join(parts)


class Timed:
    """``Timed(fn)()`` runs ``fn()`` and returns its wall-clock seconds (time.perf_counter, queued CUDA work
    included); ``last`` keeps what ``fn`` returned the latest time."""

    def __init__(self, fn: Callable[[], object]):
        self.fn, self.last = fn, None

    def __call__(self) -> float:
        synchronize()
        start = time.perf_counter()
        self.last = self.fn()
        synchronize()
        return time.perf_counter() - start


def alternate(runs: dict[str, Callable[[], Measure]], repeats: int, *, baseline: str | None = None,
              unit: str = "s", rate: bool = False, digits: int = 3) -> dict[str, float]:
    """Call every entry of ``runs`` in turn (dict order), ``repeats`` times; each returns its measure in
    ``unit`` (seconds; with ``rate`` a rate such as images/s, higher is faster), or (measure, note). Prints
    every run as it ends, then each median (min, max), then each one's speed-up over ``baseline`` as the
    ratio of the medians (> 1: faster than the baseline), between the load average at start and at end.
    -> the medians by name."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats: expected a positive integer, got {repeats!r}")
    if baseline is not None and baseline not in runs:
        raise ValueError(f"baseline: expected one of {sorted(runs)}, got {baseline!r}")
    width = max(len(name) for name in runs)
    print(f"load average at start: {load_average()}; {repeats} alternating runs of each", flush=True)
    values: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats):
        for name, fn in runs.items():
            out = fn()
            value, note = out if isinstance(out, tuple) else (out, "")
            values[name].append(float(value))
            suffix = f"  {note}" if note else ""
            print(f"run {r + 1}/{repeats}  {name:<{width}}  {value:10.{digits}f} {unit}{suffix}", flush=True)
    print(f"load average at end: {load_average()}")
    medians = {name: statistics.median(v) for name, v in values.items()}
    for name, v in values.items():
        print(f"median     {name:<{width}}  {medians[name]:10.{digits}f} {unit}  (min {min(v):.{digits}f}, "
              f"max {max(v):.{digits}f})")
    for name in runs if baseline is not None else ():
        if name != baseline:
            ratio = medians[name] / medians[baseline] if rate else medians[baseline] / medians[name]
            print(f"speed-up of {name} over {baseline} (ratio of medians): {ratio:.2f}x")
    sys.stdout.flush()
    return medians
