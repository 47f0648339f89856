"""The progress bar shows loss and accuracy on a terminal and stays silent otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from slimkit.train import TrainConfig, Trainer
from slimkit.train.progress import TrainProgress


def test_progress_on_terminal_shows_loss_and_accuracy():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=120)
    with TrainProgress(enabled=True, epochs=2, console=console) as bar:
        assert bar.active
        bar.start_epoch(1, total=2)
        bar.step(0.6931, 0.5)
        bar.step(0.5, 0.75)
        bar.end_epoch({"epoch": 1, "train_loss": 0.5, "train_acc": 0.75, "val_loss": None, "val_acc": None})
    text = out.getvalue()
    assert "epoch 1/2" in text and "loss 0.5000" in text and "acc 75.00%" in text
    assert "epoch 1: train_loss 0.5000  train_acc 75.00%  val_loss -  val_acc -" in text


def test_progress_is_silent_when_disabled_or_not_a_terminal():
    for enabled, terminal in [(False, True), (True, False)]:
        out = io.StringIO()
        with TrainProgress(enabled=enabled, epochs=1, console=Console(file=out, force_terminal=terminal)) as bar:
            bar.start_epoch(1, total=1)
            bar.step(1.0, 0.0)
            bar.end_epoch({"epoch": 1})
        assert not bar.active and out.getvalue() == ""


def test_trainer_prints_nothing_when_not_a_tty(loaders, model_factory, capsys):
    Trainer(model_factory(), TrainConfig(epochs=1, progress=True, threads=1)).fit(*loaders)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
