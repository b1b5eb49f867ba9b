"""A rich progress bar on stderr for a loop of known length: a training epoch, a learned sampler's fit (a no-op
when not shown)."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

import torch


@contextlib.contextmanager
def progress_bar(show: bool, label: str, total: int) -> Iterator[Callable[[torch.Tensor], None]]:
    """Yield ``advance(loss)`` (a scalar tensor, read only when shown); draws a bar on stderr when ``show``."""
    if not show:
        yield lambda loss: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    with bar:
        task = bar.add_task(label, total=total, loss="-")
        yield lambda loss: bar.update(task, advance=1, loss=_Shown(loss))


def on_terminal() -> bool:
    """Whether stderr is a terminal: a bar there helps a person, in a log file it is noise."""
    return sys.stderr.isatty()


class _Shown:
    """A loss read only when the bar is drawn (about ten times a second), not at every step: reading a
    GPU tensor waits for the work queued there."""

    def __init__(self, loss: torch.Tensor) -> None:
        self.loss = loss.detach()

    def __str__(self) -> str:
        return f"{float(self.loss):.4g}"
