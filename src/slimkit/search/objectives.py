"""Ready-made tuning objectives for :func:`slimkit.search.tune`: distillation hyperparameters,
pruning settings and quantization settings, each scored by accuracy on a validation loader.

Parameter names are paths into the technique's config (``train.lr``, ``losses.0.temperature``,
``criterion``), plus shortcuts for distillation: ``method`` (the name of the first loss),
``temperature`` (its temperature) and ``alpha`` (its weight, with ``1 - alpha`` on the
cross-entropy term). Pruning takes ``recover.lr``, ``recover.epochs``, ``recover.temperature``
and ``recover.alpha`` for the distillation that recovers the pruned model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from slimkit.errors import ConfigError
from slimkit.search.tune import TrialOutcome, TrialReporter

if TYPE_CHECKING:
    import optuna
    from torch.utils.data import DataLoader

    from slimkit.distillation import DistillConfig

__all__ = ["DistillObjective", "PruneObjective", "QuantizeObjective", "distill_config", "set_path"]


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``path`` ``"a.b.c"`` (list items by index), in place.

    >>> d = {"train": {"lr": 1e-3}, "losses": [{"name": "kd"}]}
    >>> set_path(d, "train.lr", 0.01); set_path(d, "losses.0.temperature", 2.0); d
    {'train': {'lr': 0.01}, 'losses': [{'name': 'kd', 'temperature': 2.0}]}
    """
    node: Any = data
    keys = path.split(".")
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"tuned parameter '{path}': '{key}' is not an index of a {len(node)}-item list")
            key = int(key)  # type: ignore[assignment]
        elif not isinstance(node, dict):
            raise ConfigError(f"tuned parameter '{path}': '{'.'.join(keys[:depth])}' is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]


def distill_config(base: DistillConfig, params: dict[str, Any]) -> DistillConfig:
    """``base`` with the tuned ``params`` applied (see the module docstring); validated again.

    >>> from slimkit.distillation import DistillConfig
    >>> c = distill_config(DistillConfig(), {"method": "dkd", "temperature": 2.0, "alpha": 0.5, "train.lr": 0.01})
    >>> c.losses, c.train.lr
    ([{'name': 'dkd', 'weight': 0.5, 'temperature': 2.0}, {'name': 'ce', 'weight': 0.5}], 0.01)
    """
    from slimkit.distillation import DistillConfig

    data = base.to_dict()
    losses = data["losses"]
    first = next((i for i, spec in enumerate(losses) if spec["name"] != "ce"), None)
    shortcuts = {k: params[k] for k in ("method", "temperature", "alpha") if k in params}
    if shortcuts and first is None:
        raise ConfigError(f"tuning {sorted(shortcuts)} needs a distillation loss besides 'ce' in the base losses",
                          hint="start from the default losses (kd + ce)")
    if "method" in shortcuts:
        losses[first]["name"] = shortcuts["method"]
    if "temperature" in shortcuts:
        losses[first]["temperature"] = float(shortcuts["temperature"])
    if "alpha" in shortcuts:
        alpha = float(shortcuts["alpha"])
        losses[first]["weight"] = alpha
        ce = [spec for spec in losses if spec["name"] == "ce"]
        if ce:
            ce[0]["weight"] = 1.0 - alpha
        else:
            losses.append({"name": "ce", "weight": 1.0 - alpha})
    for path, value in params.items():
        if path not in shortcuts:
            set_path(data, path, value)
    return DistillConfig.from_dict(data, source="tuned parameters")


class DistillObjective:
    """Distill a fresh copy of ``student`` from ``teacher`` with the trial's hyperparameters;
    the score is the validation accuracy after the last epoch (reported after every epoch).

    ``cache_dir`` keeps the teacher's outputs on disk across trials (and workers)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, train_loader: DataLoader, val_loader: Iterable[Any],
                 base: DistillConfig | None = None, *, cache_dir: str | Path | None = None) -> None:
        from slimkit.distillation import DistillConfig

        base = base or DistillConfig()
        if cache_dir is not None and base.cache_dir is None and base.cache_teacher in ("auto", "disk"):
            base = base.replace(cache_dir=str(cache_dir))
        self.student, self.teacher, self.base = student, teacher.eval().requires_grad_(False), base
        self.train_loader, self.val_loader = train_loader, val_loader

    def __call__(self, params: dict[str, Any], trial: optuna.Trial) -> TrialOutcome:
        from slimkit.distillation import run_distillation

        config = distill_config(self.base, params)
        student = copy.deepcopy(self.student)
        result = run_distillation(student, self.teacher, self.train_loader, config, val_loader=self.val_loader,
                         callbacks=[TrialReporter(trial)])
        last = result.history[-1]
        return TrialOutcome(float(last["val_acc"]), student, {"epochs": len(result.history),
                                                              "train_loss": float(last["train_loss"])})


def _split(params: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    inner = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
    return {k: v for k, v in params.items() if not k.startswith(prefix)}, inner


class PruneObjective:
    """Prune a copy of ``model`` with ``base`` (a StructuredPruning or UnstructuredPruning) changed
    by the trial's values, recover it by distilling from ``model`` (``recover.*`` values, default
    ``epochs`` epochs), and score validation accuracy. Fix the target (ratio, target_macs) in
    ``base``: tuned against accuracy alone, the amount pruned would only shrink."""

    def __init__(self, model: nn.Module, train_loader: DataLoader, val_loader: Iterable[Any], base: Any, *,
                 epochs: int = 1, lr: float = 5e-4) -> None:
        self.model, self.base, self.epochs, self.lr = model, base, epochs, lr
        self.train_loader, self.val_loader = train_loader, val_loader

    def __call__(self, params: dict[str, Any], trial: optuna.Trial) -> TrialOutcome:
        from slimkit.distillation import RecoveryConfig, recover
        from slimkit.evaluate import count_macs, count_params
        from slimkit.pruning import prune
        from slimkit.train import evaluate_loss_acc

        fields, rec = _split(params, "recover.")
        unknown = sorted(set(rec) - {"lr", "epochs", "temperature", "alpha"})
        if unknown:
            raise ConfigError(f"unknown recovery parameter(s) {['recover.' + k for k in unknown]}",
                              hint="tune recover.lr, recover.epochs, recover.temperature or recover.alpha")
        config = self.base.replace(**fields)
        example = next(iter(self.train_loader))[0][:2]
        pruned = prune(copy.deepcopy(self.model), config, example_inputs=example)
        epochs = int(rec.pop("epochs", self.epochs))
        if epochs:
            recovery = RecoveryConfig(epochs=epochs, lr=float(rec.pop("lr", self.lr)), **rec)
            recover(pruned, self.model, self.train_loader, recovery, val_loader=self.val_loader,
                    callbacks=[TrialReporter(trial)])
        accuracy = evaluate_loss_acc(pruned, self.val_loader)[1]
        if not epochs:
            trial.report(accuracy, step=0)
        info = {"params": count_params(pruned), "macs": count_macs(pruned, example)}
        return TrialOutcome(float(accuracy), pruned, info)


class QuantizeObjective:
    """Quantize ``model`` with ``base`` (a slimkit.quantization config) changed by the trial's values
    (observer, per_channel, symmetric, percentile, calibration_batches...), calibrated on
    ``calib_loader``; the score is validation accuracy. Only the settings are kept (re-applying
    them is quick and deterministic), not the quantized model."""

    def __init__(self, model: nn.Module, calib_loader: Iterable[Any], val_loader: Iterable[Any], base: Any) -> None:
        self.model, self.calib_loader, self.val_loader, self.base = model, calib_loader, val_loader, base

    def __call__(self, params: dict[str, Any], trial: optuna.Trial) -> TrialOutcome:
        from slimkit.quantization import quantize
        from slimkit.train import evaluate_loss_acc

        quantized = quantize(self.model, self.base.replace(**params), self.calib_loader)
        accuracy = evaluate_loss_acc(quantized, self.val_loader)[1]
        trial.report(accuracy, step=0)
        return TrialOutcome(float(accuracy), None, {"scheme": type(self.base).__name__})
