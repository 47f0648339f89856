"""The run's progress display: plain lines off a terminal, one live rich display on one."""

import io
import math
from types import SimpleNamespace

from rich.console import Console

from slimkit.recipe.progress import RunProgress


def test_plain_lines_when_not_a_terminal():
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    with RunProgress(3, console=console) as progress:
        progress.start_stage(2, "student", "distill")
        callback = progress.callback()
        trainer = SimpleNamespace(config=SimpleNamespace(epochs=4), steps_per_epoch=5, epoch=1)
        callback.on_fit_start(trainer)
        callback.on_step_end(trainer, {"loss": 0.5})
        callback.on_epoch_end(trainer, 2, {"train_loss": 0.25, "val_acc": 0.9})
        progress.end_stage(2, "accuracy 90.00%")
    text = console.file.getvalue()
    assert "stage 2/3 student (distill) ..." in text
    assert "stage 2/3 student (distill) epoch 2/4: train_loss 0.2500  val_acc 0.9000" in text
    assert "stage 2/3 student (distill) done in" in text and "accuracy 90.00%" in text


def test_live_display_tracks_stages_epochs_and_loss():
    console = Console(file=io.StringIO(), force_terminal=True, width=160)
    with RunProgress(2, console=console) as progress:
        assert progress.live
        progress.start_stage(1, "teacher", "train")
        progress.fit_started(epochs=2, steps_per_epoch=3, done_epochs=1)  # a resumed fit starts half done
        progress.step(2, 2, 0.125)
        steps = progress._progress.tasks[-1]
        assert (steps.total, steps.completed) == (6, 4) and "epoch 2/2  loss 0.1250" in steps.fields["detail"]
        progress.step(2, 2, math.nan)
        progress.end_stage(1, "done")
        assert progress._progress.tasks[0].completed == 1
    assert progress._progress is None


def test_disabled_progress_prints_nothing():
    console = Console(file=io.StringIO(), force_terminal=True)
    with RunProgress(1, enabled=False, console=console) as progress:
        progress.start_stage(1, "a", "train")
        progress.end_stage(1, "x")
    assert console.file.getvalue() == ""
