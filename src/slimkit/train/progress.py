"""A live progress bar per epoch (rich), showing running loss and accuracy.

It is silent unless enabled *and* stderr is a terminal, so logs, CI and pytest stay clean.
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


class TrainProgress:
    """Context manager driving one rich bar per epoch.

    >>> with TrainProgress(enabled=False, epochs=1) as bar:  # disabled: does nothing
    ...     bar.start_epoch(1, total=2); bar.step(0.5, 0.9); bar.end_epoch({"val_acc": 0.9})
    >>> bar.active
    False
    """

    def __init__(self, *, enabled: bool, epochs: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.active = enabled and self.console.is_terminal
        self.epochs = epochs
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> TrainProgress:  # noqa: PYI034 (Self needs Python 3.11)
        if self.active:
            self._progress = Progress(
                TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start_epoch(self, epoch: int, *, total: int | None) -> None:
        """Open the bar of ``epoch`` with ``total`` batches."""
        if self._progress is not None:
            self._task = self._progress.add_task(
                "train", total=total, epoch=epoch, epochs=self.epochs, loss="-", acc="-"
            )

    def step(self, loss: float, acc: float) -> None:
        """Advance by one batch, showing the epoch's running loss and accuracy."""
        if self._progress is not None:
            self._progress.update(self._task, advance=1, loss=_fmt(loss, ".4f"), acc=_fmt(acc, ".2%"))

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Print a one-line summary of the epoch under its bar."""
        if self._progress is not None:
            parts = [f"{key} {_fmt(metrics.get(key), spec)}" for key, spec in
                     (("train_loss", ".4f"), ("train_acc", ".2%"), ("val_loss", ".4f"), ("val_acc", ".2%"))]  # fmt: skip
            self._progress.console.print(f"epoch {metrics.get('epoch')}: " + "  ".join(parts), highlight=False)
