"""One live display for a whole recipe run: stage n of N, epoch, loss and time left.

On a terminal it is a rich progress display with two rows (the run's stages, the current
stage's training steps); elsewhere (logs, CI, pytest) it prints one plain line per stage and
per epoch. The training loops feed it through :class:`ProgressCallback` (their own per-epoch
bars are switched off, since rich allows one live display at a time).
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from slimkit.train import Callback


class RunProgress:
    """Context manager for a run of ``total`` stages.

    >>> import io
    >>> from rich.console import Console
    >>> console = Console(file=io.StringIO(), force_terminal=False)
    >>> with RunProgress(2, console=console) as p:
    ...     p.start_stage(1, "teacher", "train"); p.end_stage(1, "accuracy 91.0%")
    >>> "stage 1/2 teacher (train)" in console.file.getvalue()
    True
    """

    def __init__(self, total: int, *, enabled: bool = True, live: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.total = total
        self.enabled = enabled
        self.live = enabled and live and self.console.is_terminal
        self._progress: Progress | None = None
        self._run: Any = None
        self._steps: Any = None
        self._label = ""
        self._started = 0.0

    def __enter__(self) -> Self:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                console=self.console,
            )
            self._progress.start()
            self._run = self._progress.add_task("stages", total=self.total, detail="")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)

    def start_stage(self, number: int, name: str, kind: str) -> None:
        self._label = f"stage {number}/{self.total} {name} ({kind})"
        self._started = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._run, completed=number - 1, detail=self._label)
            if self._steps is not None:
                self._progress.remove_task(self._steps)
            self._steps = self._progress.add_task(name, total=None, detail="")
        else:
            self.print(f"{self._label} ...")

    def end_stage(self, number: int, summary: str) -> None:
        seconds = time.perf_counter() - self._started
        if self._progress is not None:
            self._progress.update(self._run, completed=number)
        self.print(f"{self._label} done in {seconds:.1f}s: {summary}")

    def fit_started(self, epochs: int, steps_per_epoch: int, done_epochs: int) -> None:
        if self._progress is not None and self._steps is not None:
            self._progress.update(self._steps, total=epochs * steps_per_epoch, completed=done_epochs * steps_per_epoch,
                                  detail=f"epoch {done_epochs + 1}/{epochs}")

    def step(self, epoch: int, epochs: int, loss: float) -> None:
        if self._progress is not None and self._steps is not None:
            shown = f"{loss:.4f}" if math.isfinite(loss) else "-"
            self._progress.update(self._steps, advance=1, detail=f"epoch {epoch}/{epochs}  loss {shown}")

    def epoch_end(self, epoch: int, epochs: int, metrics: dict[str, Any]) -> None:
        if self._progress is None:
            parts = [f"{k} {metrics[k]:.4f}" for k in ("train_loss", "val_acc") if isinstance(metrics.get(k), float)]
            self.print(f"  {self._label} epoch {epoch}/{epochs}: " + "  ".join(parts))

    def callback(self) -> ProgressCallback:
        return ProgressCallback(self)


class ProgressCallback(Callback):
    """Feeds a training loop's steps and epochs to a :class:`RunProgress`."""

    def __init__(self, progress: RunProgress) -> None:
        self.progress = progress

    def on_fit_start(self, trainer: Any) -> None:
        self.progress.fit_started(trainer.config.epochs, trainer.steps_per_epoch, trainer.epoch)

    def on_step_end(self, trainer: Any, logs: dict[str, float]) -> None:
        self.progress.step(trainer.epoch, trainer.config.epochs, float(logs.get("loss", math.nan)))

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        self.progress.epoch_end(epoch, trainer.config.epochs, metrics)
