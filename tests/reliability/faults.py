"""Fault injection for the reliability tests: stop a training (KeyboardInterrupt, as Ctrl-C does) at the
k-th of the points where a real interruption can land, and compare finished trainings bit for bit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from latentatlas.training import load_checkpoint

KINDS = ("step", "write", "rename", "sync")


class Interrupt:
    """Within ``with Interrupt(at=k) as faults:``, count the fault points of a training (``step``: after an
    optimizer step; ``write``: inside a checkpoint write, leaving half a temporary file; ``rename``: just
    before the rename that publishes a written file; ``sync``: in an fsync, before or after that rename) of
    the given ``kinds`` in ``faults.events`` and raise KeyboardInterrupt at the k-th (1-based; ``at=None``:
    only count)."""

    def __init__(self, at: int | None = None, kinds: tuple[str, ...] = KINDS) -> None:
        self.at, self.kinds = at, kinds
        self.events: list[str] = []
        self._patch = pytest.MonkeyPatch()

    def _tick(self, kind: str) -> bool:
        if kind not in self.kinds:
            return False
        self.events.append(kind)
        return len(self.events) == self.at

    def __enter__(self) -> "Interrupt":
        real_step, real_save, real_replace, real_fsync = torch.optim.Adam.step, torch.save, os.replace, os.fsync

        def step(optimizer, *args, **kwargs):
            out = real_step(optimizer, *args, **kwargs)
            if self._tick("step"):
                raise KeyboardInterrupt("fault: after an optimizer step")
            return out

        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            if self._tick("write"):                 # half of what was written reaches the file
                f.flush()
                f.truncate(f.tell() // 2)
                raise KeyboardInterrupt("fault: inside a checkpoint write")

        def replace(src, dst):
            if self._tick("rename"):
                raise KeyboardInterrupt("fault: before a rename")
            real_replace(src, dst)

        def fsync(fd):
            real_fsync(fd)
            if self._tick("sync"):
                raise KeyboardInterrupt("fault: in an fsync")

        self._patch.setattr(torch.optim.Adam, "step", step)
        self._patch.setattr(os, "fsync", fsync)
        self._patch.setattr(torch, "save", save)
        self._patch.setattr(os, "replace", replace)
        return self

    def __exit__(self, *exc) -> None:
        self._patch.undo()


def leftover_temporary_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("*.tmp"))


def assert_same_training(expected_dir: Path, actual_dir: Path) -> None:
    """last.pt and best.pt hold bit-identical weights, optimizer states and counters; the same history."""
    for which in ("last", "best"):
        a = load_checkpoint(expected_dir / "checkpoints" / f"{which}.pt")
        b = load_checkpoint(actual_dir / "checkpoints" / f"{which}.pt")
        assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]), which
        assert_equal_nested(a["model"], b["model"], f"{which}.model")
        assert_equal_nested(a["optimizers"], b["optimizers"], f"{which}.optimizers")
        assert torch.equal(a["generator_state"], b["generator_state"]), which
        assert [_scores(h) for h in a["history"]] == [_scores(h) for h in b["history"]], which


def _scores(line: dict) -> dict:
    return {k: v for k, v in line.items() if k != "seconds"}


def assert_equal_nested(a, b, where: str) -> None:
    """Equal structures; tensors equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for key in a:
            assert_equal_nested(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_nested(x, y, f"{where}[{i}]")
    else:
        assert a == b, where
