"""slimkit: make trained PyTorch models smaller and faster, and prove it.

One verb per technique. Each takes a model and a typed config (plus the data it needs),
returns the model, and records what it did in the model's history::

    import slimkit
    student = slimkit.distill(student, slimkit.DistillConfig(), train_loader, teacher=teacher)
    pruned = slimkit.prune(model, slimkit.StructuredPruning(target_macs=0.5), train_loader)
    pruned = slimkit.recover(pruned, model, train_loader, slimkit.RecoveryConfig(epochs=2))
    int8 = slimkit.quantize(pruned, slimkit.StaticInt8(), calibration_loader)
    print(slimkit.compare(model, int8, test_loader).summary())

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
    "load_model": "slimkit.export",
    "report_of": "slimkit.export",
    # the verbs, one per technique: verb(model, config, loader=None, ...) -> model
    "prune": "slimkit.pruning",
    "quantize": "slimkit.quantization",
    "factorize": "slimkit.factorization",
    "share": "slimkit.sharing",
    "fuse": "slimkit.transform",
    "lighten": "slimkit.transform",
    "distill": "slimkit.distillation",
    "recover": "slimkit.distillation",
    # their configs
    "StructuredPruning": "slimkit.pruning",
    "UnstructuredPruning": "slimkit.pruning",
    "AttentionPruning": "slimkit.pruning",
    "StaticInt8": "slimkit.quantization",
    "DynamicInt8": "slimkit.quantization",
    "EmbeddingInt8": "slimkit.quantization",
    "QAT": "slimkit.quantization",
    "LowBit": "slimkit.quantization",
    "MixedPrecision": "slimkit.quantization",
    "SVD": "slimkit.factorization",
    "Tucker": "slimkit.factorization",
    "CP": "slimkit.factorization",
    "ShareConfig": "slimkit.sharing",
    "DeepCompressionConfig": "slimkit.sharing",
    "FuseConfig": "slimkit.transform",
    "LightenConfig": "slimkit.transform",
    "DistillConfig": "slimkit.distillation",
    "RecoveryConfig": "slimkit.distillation",
}

__all__ = sorted([*_EXPORTS, "__version__"])  # noqa: PLE0605 (one list of names, kept sorted)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slimkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__
