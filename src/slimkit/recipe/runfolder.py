"""Read what a run folder holds: its final model, the data it ran on, the code it names.

Every command writes the same kind of folder (a recipe run: ``status.json``, one folder per
stage, ``final.json``, the report), so every command reads them the same way. A path may be:

- a run folder: its model is the last finished stage's;
- one stage's folder inside a run (``runs/x/02-prune``);
- a bare saved-model folder (``model.json`` + ``model.safetensors``, from ``save_model``).

Everything read here is data: a factory reference recorded in a folder is only reported, never
imported, unless the caller's :class:`~slimkit.imports.Trust` names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from slimkit.data import DataConfig
from slimkit.errors import CheckpointError
from slimkit.export.serialize import SPEC_FILE
from slimkit.imports import Trust
from slimkit.recipe.records import read_metrics, read_resolved, read_status

MODEL_DIR = "model"


def stage_folders(run: Path) -> list[Path]:
    """The finished stages' folders of a run, in order (``00-source`` first)."""
    status = read_status(run / "status.json")
    folders = [run / "00-source"] if status.source == "done" else []
    return folders + [run / s.folder for s in status.stages if s.state == "done"]


def model_folder(path: str | Path) -> Path:
    """The saved-model folder a run, stage or model path stands for."""
    path = Path(path)
    if (path / SPEC_FILE).is_file():
        return path
    if (path / MODEL_DIR / SPEC_FILE).is_file():
        return path / MODEL_DIR
    if (path / "status.json").is_file():
        done = stage_folders(path)
        if done and (done[-1] / MODEL_DIR / SPEC_FILE).is_file():
            return done[-1] / MODEL_DIR
        raise CheckpointError(f"{path} is a slimkit run with no finished stage yet",
                              hint="finish it with `slimkit run ... --resume`, or pass another folder")
    raise CheckpointError(
        f"{path} is neither a slimkit run nor a saved model (no status.json, {MODEL_DIR}/{SPEC_FILE} or {SPEC_FILE})",
        hint="pass the --out folder of a slimkit command, or a folder written by slimkit.export.save_model",
    )


def run_data(path: str | Path) -> DataConfig | None:
    """The data a run (or one of its stages) was measured on; None for a bare model folder."""
    path = Path(path)
    if (path / "metrics.json").is_file():  # a stage folder: its own data (a transfer changes it)
        return read_metrics(path / "metrics.json").data_config(path / "metrics.json")
    if (path / "status.json").is_file():
        done = [f for f in stage_folders(path) if (f / "metrics.json").is_file()]
        if done:
            return read_metrics(done[-1] / "metrics.json").data_config(done[-1] / "metrics.json")
        return read_resolved(path / "recipe.resolved.json").data
    if path.name == MODEL_DIR and (path.parent / "metrics.json").is_file():
        return run_data(path.parent)
    return None


def recorded_factory(folder: Path) -> str | None:
    """The factory reference a saved model's metadata names (None for registry models)."""
    return recorded_source(folder)[0]


def recorded_source(folder: Path) -> tuple[str | None, dict[str, Any]]:
    """The factory and knobs a saved model's metadata records (data: checked, never imported here)."""
    from slimkit.export.serialize import read_spec

    source = (read_spec(folder).get("metadata") or {}).get("source") or {}
    factory = source.get("factory") if isinstance(source, dict) else None
    knobs = source.get("knobs", {}) if isinstance(source, dict) else {}
    if factory is not None and not isinstance(factory, str) or not isinstance(knobs, dict):
        raise CheckpointError(f"{folder / SPEC_FILE}: metadata.source must hold a factory string and knobs mapping")
    return factory, knobs


def load_run_model(path: str | Path, *, trust: Trust | None = None, factory: str | None = None,
                   knobs: dict[str, Any] | None = None) -> nn.Module:
    """The model a run, stage or model folder holds, rebuilt without unpickling anything.

    A custom (non-registry) model needs its architecture: ``factory`` (the user's reference,
    trusted by naming it) or, with ``trust``, the factory the folder itself records.
    """
    from slimkit.export.serialize import load_model, read_spec

    folder = model_folder(path)
    trust = trust or Trust()
    doc = read_spec(folder)
    base = None
    if factory is not None or not doc["spec"].get("name"):
        ref, recorded_knobs = (factory, knobs) if factory is not None else recorded_source(folder)
        knobs = knobs if factory is not None else recorded_knobs
        if ref is None:
            raise CheckpointError(f"{folder} holds a custom {doc['spec'].get('class', 'model')} and records no "
                                  "factory to rebuild it", hint="pass --model package.module:factory that builds it")
        where = "the command line" if factory is not None else str(folder / SPEC_FILE)
        built = (Trust({ref}) if factory is not None else trust).load(ref, where)(**(knobs or {}))
        if not isinstance(built, nn.Module):
            raise CheckpointError(f"{ref} returned a {type(built).__name__}, not a torch.nn.Module",
                                  hint="the factory must return the model")
        base = built
    model = load_model(folder, model=base)
    if getattr(model, "slimkit_spec", None) is None and doc["spec"].get("name"):
        model.slimkit_spec = dict(doc["spec"])  # a runtime module replaced the zoo model: keep its origin
    return model
