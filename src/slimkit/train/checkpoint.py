"""Files a run leaves on disk: atomic writes, training checkpoints and the metrics.jsonl log.

Every write goes to a temporary file in the target's directory and is then renamed over the
target with ``os.replace``, so a reader (or a resume after a crash) sees the old file or the new
one, never half of one. Checkpoints are read with ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from slimkit.errors import CheckpointError
from slimkit.fileio import atomic_write_text, json_safe

#: Written into every checkpoint so a future layout change can be detected instead of mis-read.
CHECKPOINT_FORMAT = "slimkit.train/1"
CHECKPOINT_KEYS = (
    "format", "epoch", "global_step", "steps_per_epoch", "model", "optimizer", "scheduler", "scaler",
    "loss_fn", "callbacks", "best", "stopped_early", "history", "config",
)  # fmt: skip


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a training checkpoint written by the Trainer (on CPU, ``weights_only=True``).

    Raises CheckpointError naming the file when it is missing, unreadable, or not a
    checkpoint of this format.
    """
    path = Path(path)
    fresh = "start without resume (resume=False), or use the out_dir of the run that wrote it"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist", hint=fresh)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 torch raises several types (RuntimeError, UnpicklingError, EOFError...)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch file ({type(exc).__name__}: {exc})".splitlines()[0],
            hint=f"delete {path} and {fresh}; best.pt next to it may still be intact",
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"checkpoint {path} is not a slimkit training checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})",
            hint=fresh,
        )
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}", hint=fresh)
    return state


def plain_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics with one-element tensors and numpy scalars turned into Python numbers.

    Callbacks may add such values; as they are, checkpoints would not load with weights_only
    and JSON would not serialize them.

    >>> plain_metrics({"a": torch.tensor(0.5), "b": 2, "c": None})
    {'a': 0.5, 'b': 2, 'c': None}
    """
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1 or type(value).__module__ == "numpy" and hasattr(value, "item"):
            value = value.item()
        out[str(key)] = value
    return out


def metrics_line(metrics: dict[str, Any]) -> str:
    """One metrics.jsonl line (no trailing newline); non-finite numbers become null.

    >>> metrics_line({"epoch": 1, "val_acc": float("nan")})
    '{"epoch": 1, "val_acc": null}'
    """
    return json.dumps(json_safe(metrics), allow_nan=False)


def append_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    """Append one epoch's metrics to a JSON-lines file."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(metrics_line(metrics) + "\n")


def rewrite_metrics(path: str | os.PathLike[str], history: Iterable[dict[str, Any]]) -> None:
    """Replace a JSON-lines file by ``history`` atomically.

    A resume calls this so the log holds exactly the epochs of the checkpoint it resumes from:
    lines from an epoch that was cut short, or written twice, disappear.
    """
    atomic_write_text(path, "".join(metrics_line(m) + "\n" for m in history))
