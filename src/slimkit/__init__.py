"""slimkit: make trained PyTorch models smaller and faster, and prove it.

One verb per technique, each taking a model and a typed config::

    import slimkit
    student = slimkit.distill(student, teacher, train_loader, slimkit.DistillConfig())
    report = slimkit.compare(teacher, student, test_loader)

Importing ``slimkit`` is cheap: every public name is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily by __getattr__ so that
# `import slimkit` does not pull in torch extensions, sklearn or onnx.
_EXPORTS = {
    "SlimkitError": "slimkit.errors",
    "ConfigError": "slimkit.errors",
    "DataError": "slimkit.errors",
    "ModelError": "slimkit.errors",
    "CheckpointError": "slimkit.errors",
    "TrainingError": "slimkit.errors",
    "Registry": "slimkit.registry",
    "Config": "slimkit.config",
    "select_modules": "slimkit.select",
    "DataConfig": "slimkit.data",
    "load_data": "slimkit.data",
    "load_dataset": "slimkit.data",
    "load_npz": "slimkit.data",
    "make_loaders": "slimkit.data",
    "DATASETS": "slimkit.data",
    "MODELS": "slimkit.models",
    "build_model": "slimkit.models",
    "Trainer": "slimkit.train",
    "TrainConfig": "slimkit.train",
    "Callback": "slimkit.train",
    "train": "slimkit.train",
    "predict": "slimkit.evaluate",
    "quality": "slimkit.evaluate",
    "compare": "slimkit.evaluate",
    "measure_latency": "slimkit.evaluate",
    "save_model": "slimkit.export",
    # Technique packages are callable: slimkit.distill(...) runs the verb, and
    # slimkit.distill.DistillConfig is its config.
    "distill": "slimkit",
    "DistillConfig": "slimkit.distill",
    "load_model": "slimkit.export",
}

__all__ = sorted([*_EXPORTS, "__version__"])  # noqa: PLE0605 (one list of names, kept sorted)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slimkit' has no attribute '{name}'")
    value = importlib.import_module(f"slimkit.{name}") if module == "slimkit" else getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__
