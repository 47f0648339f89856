"""Save and load models without pickle: tensors as safetensors, structure as JSON.

A saved model is a folder with ``model.safetensors`` and ``model.json``. The JSON holds the
model's spec (its registry name and arguments) and its *history*: the structural changes
(pruning, factorization, ...) applied since it was built. Loading rebuilds the model from the
spec and replays the history, so no code object is ever unpickled.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from slimkit.errors import CheckpointError, SlimkitError
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
    "slimkit.export.routed", "slimkit.export.openvino", "slimkit.dynamic", "slimkit.recipe",
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


#: Parameters and buffers a model rebuilt from a model.json may hold: 2**31 values is 8 GB of
#: float32, far beyond any model slimkit's zoo builds; a spec asking for more is corrupt or hostile,
#: and is refused before anything is allocated (the spec is built on the meta device first).
MAX_MODEL_VALUES = 2**31
#: Submodules a spec may build: slimkit's zoo builds at most a few hundred (a ResNet-1202, the
#: deepest in the literature, about 5,400); ``convs_per_stage: 1e9`` would otherwise loop for hours.
#: Building 10,000 modules on the meta device takes about a second.
MAX_MODULES = 10_000
SPEC_HINT = "the model.json was edited or damaged: save the model again, or restore the file"


class _TooManyModules(Exception):
    pass


@contextlib.contextmanager
def _module_budget(limit: int) -> Iterator[None]:
    """Count the submodules registered inside the block; stop it beyond ``limit``."""
    from torch.nn.modules.module import register_module_module_registration_hook

    count = 0

    def hook(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
        nonlocal count
        count += 1
        if count > limit:
            raise _TooManyModules

    handle = register_module_module_registration_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _spec_error(path: Path, field: str, problem: str) -> CheckpointError:
    return CheckpointError(f"{path}: field '{field}': {problem}", hint=SPEC_HINT)


def read_spec(folder: str | Path) -> dict[str, Any]:
    """Read and check ``model.json`` of a saved model: an object whose ``format``, ``version``,
    ``spec``, ``inputs``, ``history`` and ``metadata`` have the types slimkit wrote; a problem is
    one CheckpointError naming the file and the field."""
    from slimkit.fileio import read_json_checked

    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise CheckpointError(
            f"no saved model at {folder}: {SPEC_FILE} is missing",
            hint="pass the folder written by slimkit's save_model or a run's model folder",
        )
    doc = read_json_checked(path, what="saved model's spec", hint=SPEC_HINT)
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(doc).__name__}", hint=SPEC_HINT)
    if doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a slimkit model spec (format field is {str(doc.get('format'))[:40]!r})")
    version = doc.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _spec_error(path, "version", f"expected a positive integer, got {str(version)[:40]!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {version}, newer than this slimkit ({FORMAT_VERSION})",
                              hint="upgrade slimkit")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise _spec_error(path, "spec", f"expected an object, got {type(spec).__name__}")
    for key, kinds, label in (("name", (str, type(None)), "a model name or null"), ("kwargs", (dict,), "an object"),
                              ("class", (str,), "a class name")):
        if key in spec and not isinstance(spec[key], kinds):
            raise _spec_error(path, f"spec.{key}", f"expected {label}, got {type(spec[key]).__name__}")
    for key, kinds, label in (("inputs", (dict, type(None)), "an input spec or null"),
                              ("history", (list,), "a list of changes"), ("metadata", (dict, type(None)), "an object")):
        if key in doc and not isinstance(doc[key], kinds):
            raise _spec_error(path, key, f"expected {label}, got {type(doc[key]).__name__}")
    for index, change in enumerate(doc.get("history", [])):
        if not isinstance(change, dict) or not isinstance(change.get("kind"), str):
            raise _spec_error(path, f"history.{index}", "expected an object with a 'kind' naming the change, got "
                                                       f"{str(change)[:60]}")
    return doc


def build_from_spec(doc: dict[str, Any], path: Path) -> nn.Module:
    """The registry model ``doc["spec"]`` names, built for real only once the same build on the
    meta device (no memory) shows it within :data:`MAX_MODEL_VALUES`."""
    from slimkit.models import build_model, is_model, model_names

    spec = doc["spec"]
    name, kwargs = spec["name"], spec.get("kwargs", {})
    if not is_model(name):
        from slimkit.registry import did_you_mean

        raise _spec_error(path, "spec.name", f"'{name[:60]}' is not a model in slimkit's registry."
                                             f"{did_you_mean(name, model_names())}")
    try:
        with torch.device("meta"), _module_budget(limit=MAX_MODULES):
            shadow = build_model(name, **kwargs)
    except _TooManyModules:
        raise _spec_error(path, "spec.kwargs", f"{name} with these knobs has more than {MAX_MODULES:,} layers, "
                                               "more than slimkit builds from a file") from None
    except SlimkitError as exc:
        raise _spec_error(path, "spec.kwargs", str(exc.args[0])) from None
    except (TypeError, ValueError, OverflowError, RuntimeError, IndexError, ZeroDivisionError) as exc:
        raise _spec_error(path, "spec.kwargs", f"{name} cannot be built from them ({type(exc).__name__}: "
                                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
    values = sum(t.numel() for t in (*shadow.parameters(), *shadow.buffers()))
    if values > MAX_MODEL_VALUES:
        raise _spec_error(path, "spec.kwargs", f"{name} with these knobs holds {values:,} parameters and buffers, "
                                               f"more than slimkit builds from a file ({MAX_MODEL_VALUES:,})")
    return build_model(name, **kwargs)


def replay_history(model: nn.Module, history: list[dict[str, Any]], path: Path) -> nn.Module:
    """Replay each recorded change on ``model``; a bad entry (unknown kind, missing or mistyped
    fields, a layer the model lacks) is one CheckpointError naming the file and the entry."""
    for index, change in enumerate(history):
        kind = change["kind"]
        where = f"{path}: history entry {index} ({kind[:40]!r})"
        try:
            replay = replayer(kind)
        except SlimkitError:
            raise CheckpointError(f"{where}: no such kind of change (known: {', '.join(CHANGES.names())})",
                                  hint=SPEC_HINT) from None
        try:
            model = replay(model, change)
        except SlimkitError as exc:
            raise CheckpointError(f"{where}: {exc.args[0]}", hint=exc.hint or SPEC_HINT) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RuntimeError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0] if str(exc) else ""
            raise CheckpointError(f"{where}: cannot be replayed ({type(exc).__name__}: {detail[:160]})",
                                  hint=SPEC_HINT) from None
    return model


def load_model(folder: str | Path, *, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a saved model and load its weights. Nothing is unpickled.

    ``model`` supplies the architecture when the spec is not a registry model (a user's own
    module); its recorded history is replayed on it before the weights load. Everything read
    from the folder is checked first (:func:`read_spec`, :func:`build_from_spec`, the input spec
    on the meta device), so a damaged or hostile file is one CheckpointError, not a traceback.
    """
    folder = Path(folder)
    path = folder / SPEC_FILE
    doc = read_spec(folder)
    spec = doc["spec"]
    if model is None:
        if not spec.get("name"):
            raise CheckpointError(
                f"{folder} holds a {spec.get('class', 'custom')} model that is not in slimkit's registry",
                hint="pass model=<an instance of the same architecture> to load its weights",
            )
        model = build_from_spec(doc, path)
    if doc.get("inputs") is not None:
        from slimkit.modelio import make_inputs

        try:
            with torch.device("meta"):  # checks types and sizes without allocating a byte
                make_inputs(doc["inputs"], 1, source=f"{path}: field 'inputs'", device="meta")
        except (TypeError, ValueError, OverflowError, RuntimeError) as exc:  # e.g. a dtype that is not a name
            raise _spec_error(path, "inputs", f"not an input spec ({type(exc).__name__}: "
                                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        model.slimkit_inputs = doc["inputs"]
    model = replay_history(model, doc.get("history", []), path)
    model.slimkit_history = list(doc.get("history", []))
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (SafetensorError, FileNotFoundError, OSError) as exc:
        raise CheckpointError(f"cannot read {folder / WEIGHTS_FILE}: {exc}") from None
    load_state(model, tensors, source=str(folder / WEIGHTS_FILE))
    return model.eval()


def load_state(model: nn.Module, tensors: dict[str, torch.Tensor], *, source: str) -> None:
    """Load a state dict, naming every missing, unexpected, mis-shaped or mistyped tensor on failure.

    A saved tensor must have the model's dtype exactly: ``load_state_dict`` would silently cast
    int8 codes into a float model (garbage weights, reported as a normal accuracy).
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    common = sorted(set(own) & set(tensors))
    shapes = [f"{k}: saved {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
              for k in common if tensors[k].shape != own[k].shape]
    dtypes = [f"{k}: saved {str(tensors[k].dtype).removeprefix('torch.')} vs model "
              f"{str(own[k].dtype).removeprefix('torch.')}" for k in common if tensors[k].dtype != own[k].dtype]
    if missing or extra or shapes or dtypes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else ""]
        parts += shapes[:5] + dtypes[:5]
        raise CheckpointError(
            f"{source} does not fit the model: " + "; ".join(p for p in parts if p),
            hint="the weights were saved from a different architecture, history or dtype",
        )
    model.load_state_dict(tensors)
