"""Save and load models without pickle: tensors as safetensors, structure as JSON.

A saved model is a folder with ``model.safetensors`` and ``model.json``. The JSON holds the
model's spec (its registry name and arguments) and its *history*: the structural changes
(pruning, factorization, ...) applied since it was built. Loading rebuilds the model from the
spec and replays the history, so no code object is ever unpickled.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from slimkit.errors import CheckpointError
from slimkit.fileio import atomic_path, atomic_write_json
from slimkit.registry import Registry

FORMAT = "slimkit-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"

Replayer = Callable[[nn.Module, dict[str, Any]], nn.Module]
#: Structural changes that loading can replay, by the ``kind`` recorded in a model's history.
CHANGES: Registry[Replayer] = Registry("model change")
#: Packages that register replayers when imported; loading imports them only when a saved
#: history needs one, so a fresh process can reload any compressed model.
REPLAYER_PACKAGES = (
    "slimkit.pruning", "slimkit.factorization", "slimkit.sharing", "slimkit.transform", "slimkit.quantization",
    "slimkit.export.onnx", "slimkit.recipe",
)


def replayer(kind: str) -> Replayer:
    """The replay function for ``kind``, importing the packages that provide replayers if needed."""
    if kind not in CHANGES:
        for package in REPLAYER_PACKAGES:
            importlib.import_module(package)
    return CHANGES.get(kind)


def record_change(model: nn.Module, kind: str, **details: Any) -> None:
    """Append a replayable structural change to ``model.slimkit_history``.

    ``kind`` must be registered in :data:`CHANGES` so that :func:`load_model` can replay it.
    """
    replayer(kind)
    model.slimkit_history = [*getattr(model, "slimkit_history", []), {"kind": kind, **details}]


def record_report(model: nn.Module, verb: str, report: dict[str, Any]) -> None:
    """Record what ``verb`` did to ``model`` (per-layer ranks, skipped layers and why, training
    history, ...) in its history, the one place a model keeps what was done to it. Saved with the
    model; read back with :func:`report_of`.
    """
    record_change(model, "report", verb=verb, report=report)


def report_of(model: nn.Module, verb: str) -> dict[str, Any]:
    """What the latest ``verb`` (``"prune"``, ``"factorize"``, ``"distill"``...) recorded on
    ``model``; ``{}`` if it recorded nothing.

    >>> net = nn.Linear(2, 2)
    >>> record_report(net, "share", {"layers": ["0"]})
    >>> report_of(net, "share"), report_of(net, "prune")
    ({'layers': ['0']}, {})
    """
    for entry in reversed(getattr(model, "slimkit_history", [])):
        if entry.get("kind") == "report" and entry.get("verb") == verb:
            return dict(entry.get("report") or {})
    return {}


def _unchanged(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Replaying a report: it changed nothing that has to be rebuilt."""
    return model


if "report" not in CHANGES:
    CHANGES.add("report", _unchanged, doc="what a verb did (a record; nothing to rebuild)")


def model_spec(model: nn.Module) -> dict[str, Any]:
    spec = getattr(model, "slimkit_spec", None)
    if spec is None:
        return {"name": None, "class": type(model).__qualname__}
    return dict(spec)


def save_model(model: nn.Module, folder: str | Path, *, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` to ``folder`` (weights + spec + history), atomically. Returns the folder.

    >>> import tempfile
    >>> from slimkit.models import build_model
    >>> net = build_model("mlp", hidden=[16], input_size=8)
    >>> out = save_model(net, tempfile.mkdtemp())
    >>> torch.equal(load_model(out)(torch.ones(1, 1, 8, 8)), net(torch.ones(1, 1, 8, 8)))
    True
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # safetensors refuses shared or strided storage; cloning makes every tensor its own.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    atomic_write_json(
        folder / SPEC_FILE,
        {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "spec": model_spec(model),
            "inputs": getattr(model, "slimkit_inputs", None),
            "history": list(getattr(model, "slimkit_history", [])),
            "metadata": metadata or {},
        },
    )
    return folder


def read_spec(folder: str | Path) -> dict[str, Any]:
    """Read and check ``model.json`` of a saved model."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no saved model at {folder}: {SPEC_FILE} is missing",
            hint="pass the folder written by slimkit's save_model or a run's model folder",
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a slimkit model spec (format field is {doc.get('format')!r})")
    if doc.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {doc['version']}, newer than this slimkit ({FORMAT_VERSION})",
            hint="upgrade slimkit",
        )
    return doc


def load_model(folder: str | Path, *, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a saved model and load its weights. Nothing is unpickled.

    ``model`` supplies the architecture when the spec is not a registry model (a user's own
    module); its recorded history is replayed on it before the weights load.
    """
    folder = Path(folder)
    doc = read_spec(folder)
    spec = doc["spec"]
    if model is None:
        if not spec.get("name"):
            raise CheckpointError(
                f"{folder} holds a {spec.get('class', 'custom')} model that is not in slimkit's registry",
                hint="pass model=<an instance of the same architecture> to load its weights",
            )
        from slimkit.models import build_model

        model = build_model(spec["name"], **spec.get("kwargs", {}))
    if doc.get("inputs") is not None:
        from slimkit.modelio import make_inputs

        make_inputs(doc["inputs"], 1, source=str(folder / SPEC_FILE))  # checks the spec before replay uses it
        model.slimkit_inputs = doc["inputs"]
    for change in doc.get("history", []):
        model = replayer(change["kind"])(model, change)
    model.slimkit_history = list(doc.get("history", []))
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, FileNotFoundError, OSError) as exc:
        raise CheckpointError(f"cannot read {folder / WEIGHTS_FILE}: {exc}") from None
    load_state(model, tensors, source=str(folder / WEIGHTS_FILE))
    return model.eval()


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """Load a state dict, naming every missing, unexpected or mis-shaped tensor on failure."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    shapes = [
        f"{k}: saved {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(tensors))
        if tensors[k].shape != own[k].shape
    ]
    if missing or extra or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else ""]
        parts += shapes[:5]
        raise CheckpointError(
            f"{source} does not fit the model: " + "; ".join(p for p in parts if p),
            hint="the weights were saved from a different architecture or history",
        )
    model.load_state_dict(tensors)
