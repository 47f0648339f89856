"""Build a recipe's models from their source, and save/load them between stages.

Every stage's output is saved with slimkit's serializer (safetensors + JSON history, no pickle)
and the *next* stage starts from the reloaded copy, in an uninterrupted run as in a resumed one,
so both follow exactly the same path. A model built by the user's factory records its source in
the saved metadata, so reloading calls the same factory before loading the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from slimkit.data import DatasetSplits
from slimkit.errors import ConfigError, ModelError
from slimkit.imports import Trust
from slimkit.recipe.schema import ModelSource

MODEL_DIR = "model"


def _from_factory(source: ModelSource, trust: Trust, where: str) -> nn.Module:
    factory = trust.load(source.factory, where)  # type: ignore[arg-type]
    model = factory(**source.knobs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.factory {source.factory} returned {type(model).__name__}, not a torch.nn.Module",
                          hint="the factory must return the model (an nn.Module)")
    return model


def build_source(source: ModelSource, splits: DatasetSplits, *, seed: int, trust: Trust | None = None) -> nn.Module:
    """The model ``source`` names; zoo models get their input/output shape from ``splits``.

    A factory is imported only if ``trust`` names it.

    >>> from slimkit.data import load_dataset
    >>> splits = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=20)
    >>> net = build_source(ModelSource(registry="mlp", knobs={"hidden": [4]}), splits, seed=0)
    >>> net.slimkit_spec["kwargs"]["num_classes"], net.slimkit_spec["kwargs"]["input_size"]
    (3, 8)
    """
    from slimkit.train.runtime import seed_everything

    trust = trust or Trust()
    seed_everything(seed)  # the initial weights must not depend on what ran before
    if source.registry is not None:
        from slimkit.models import build_model

        shape = {"in_channels": splits.input_shape[0], "num_classes": splits.num_classes,
                 "input_size": splits.input_shape[-1]}
        return build_model(source.registry, **{**shape, **source.knobs})
    if source.run is not None:
        from slimkit.recipe.runfolder import load_run_model

        if source.factory is not None:
            trust.require(source.factory, "the recipe's model source")
        return load_run_model(source.run, trust=trust, factory=source.factory, knobs=source.knobs)
    return _from_factory(source, trust, "the recipe's model.factory")


def save_stage_model(model: nn.Module, folder: Path, source: ModelSource) -> Path:
    """Save ``model`` to ``folder/model`` (atomically, file by file) with its source in the metadata."""
    from slimkit.export.serialize import save_model

    try:
        return save_model(model, folder / MODEL_DIR, metadata={"source": source.to_dict()})
    except Exception as exc:  # any failure to serialize: say which model and what would fix it
        raise ModelError(f"cannot save the {type(model).__name__} of {folder.name}: {exc}",
                         hint="every stage's model is saved so the run can resume; quantize with "
                              "backend: onnxruntime rather than x86") from exc


def load_stage_model(folder: Path, trust: Trust | None = None) -> nn.Module:
    """Reload the model a stage saved in ``folder/model``. A custom model's factory, recorded in
    the folder, is imported only if ``trust`` names it (the recipe run names it and was trusted)."""
    from slimkit.recipe.runfolder import load_run_model

    return load_run_model(folder / MODEL_DIR, trust=trust)


def model_bytes(folder: Path) -> int:
    """Bytes of the saved weights file of a stage (the real file on disk)."""
    from slimkit.export.serialize import WEIGHTS_FILE

    return (folder / MODEL_DIR / WEIGHTS_FILE).stat().st_size


def tree_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def deployed_module(artifact: Path | None, model: nn.Module) -> nn.Module:
    """What a user would run: the exported artifact when it is a runnable file, else ``model``."""
    if artifact is not None and artifact.suffix in (".onnx", ".pt", ".pt2"):
        from slimkit.export.parity import load_artifact

        return load_artifact(artifact)
    return model


def describe(model: nn.Module) -> dict[str, Any]:
    """Architecture facts for the report: spec name and kwargs, history kinds, runtime."""
    spec = getattr(model, "slimkit_spec", None) or {}
    return {"name": spec.get("name"), "kwargs": spec.get("kwargs", {}), "class": type(model).__name__,
            "changes": [c.get("kind") for c in getattr(model, "slimkit_history", [])]}
