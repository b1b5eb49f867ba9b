"""A rich progress bar on stderr for one epoch (a no-op when disabled)."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch


@contextlib.contextmanager
def epoch_progress(show: bool, epoch: int, batches: int) -> Iterator[Callable[[torch.Tensor], None]]:
    """Yield ``advance(loss)`` (a scalar tensor, read only when shown); draws a bar on stderr when ``show``."""
    if not show:
        yield lambda loss: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"epoch {epoch}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task("train", total=batches, loss="-")
        yield lambda loss: bar.update(task, advance=1, loss=_Shown(loss))


class _Shown:
    """A loss read only when the bar is drawn (about ten times a second), not at every step: reading a
    GPU tensor waits for the work queued there."""

    def __init__(self, loss: torch.Tensor) -> None:
        self.loss = loss.detach()

    def __str__(self) -> str:
        return f"{float(self.loss):.4g}"
