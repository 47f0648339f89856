"""Callback: the plug-in points of the training loop (all hooks are no-ops by default)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only for annotations: keeps this module free of an import cycle with loop.py
    from slimkit.train.loop import Trainer


class Callback:
    """Override the hooks you need. The trainer calls them in this order::

        on_fit_start
        per epoch:  on_epoch_start -> per batch: [backward, grad clip] on_after_backward
                    [optimizer step, schedule step] on_step_end -> [validation] on_epoch_end
                    [checkpoint, metrics.jsonl]
        on_fit_end

    ``on_after_backward`` sees unscaled, already clipped gradients, so what it adds (an L1
    subgradient for BatchNorm sparsity, a gradient mask) reaches the optimizer step unclipped.
    ``on_epoch_end`` may add entries to ``metrics``; they go into the history and metrics.jsonl.
    A callback with state to keep across a resume overrides ``state_dict``/``load_state_dict``
    (plain tensors, numbers, strings, lists and dicts only: checkpoints load with weights_only).

    >>> class CountSteps(Callback):
    ...     def __init__(self): self.steps = 0
    ...     def on_step_end(self, trainer, logs): self.steps += 1
    ...     def state_dict(self): return {"steps": self.steps}
    ...     def load_state_dict(self, state): self.steps = state["steps"]
    >>> CountSteps().state_dict()
    {'steps': 0}
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once, after any resume state has been restored."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Called at the start of ``epoch`` (1-based), after the epoch's seed is set."""

    def on_after_backward(self, trainer: Trainer) -> None:
        """Called between backward (and gradient clipping) and ``optimizer.step()``."""

    def on_step_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        """Called after each optimizer step with the batch's loss, acc, lr and loss logs."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
        """Called after validation, before the epoch's checkpoints are written."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once when training finishes normally (not on an error)."""

    def state_dict(self) -> dict[str, Any]:
        """State saved in every checkpoint; empty by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; ignores it by default."""
