"""The layout of a run folder, so every command reads and writes runs the same way.

    RUN/
      run.json          what was run: command, data config, train config, final metrics
      model/            the trained model (model.safetensors + model.json)
      last.pt, best.pt  training checkpoints (resume)
      metrics.jsonl     one line of metrics per epoch
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from slimkit.errors import CheckpointError
from slimkit.export.serialize import SPEC_FILE, load_model, save_model
from slimkit.fileio import atomic_write_json

RUN_FILE = "run.json"
MODEL_DIR = "model"


def model_folder(path: str | Path) -> Path:
    """The saved-model folder for a run folder or a model folder."""
    path = Path(path)
    if (path / MODEL_DIR / SPEC_FILE).is_file():
        return path / MODEL_DIR
    if (path / SPEC_FILE).is_file():
        return path
    raise CheckpointError(
        f"{path} is neither a slimkit run nor a saved model (no {MODEL_DIR}/{SPEC_FILE} or {SPEC_FILE})",
        hint="pass the --out folder of `slimkit train`, or a folder written by save_model",
    )


def load_run_model(path: str | Path, *, model: nn.Module | None = None) -> nn.Module:
    return load_model(model_folder(path), model=model)


def read_run(path: str | Path) -> dict[str, Any]:
    """The run's record, or ``{}`` for a bare model folder."""
    file = Path(path) / RUN_FILE
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} is not valid JSON ({exc})", hint="delete it and rerun the command") from None


def write_run(path: str | Path, model: nn.Module, record: dict[str, Any]) -> Path:
    """Save the model and the run record; the record is written last, so it marks completion."""
    path = Path(path)
    save_model(model, path / MODEL_DIR)
    atomic_write_json(path / RUN_FILE, record)
    return path
