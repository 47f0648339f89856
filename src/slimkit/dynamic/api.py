"""The verb: ``make_dynamic(model, config, loader, *, val_loader=None, teacher=None) -> model``.

The config's type chooses the technique: :class:`EarlyExit` (exit heads, trained by
self-distillation, thresholds calibrated on ``val_loader``) or :class:`ChannelGating`
(Feature Boosting and Suppression, fine-tuned by distillation from ``teacher``, by default the
model as given). Both work on a copy and return a new model; the input is left alone. The
structural change is recorded in the model's history (``early_exit`` / ``channel_gating``), so
``slimkit.export.save_model`` / ``load_model`` rebuild it, and what was done is recorded with
``record_report(model, "make_dynamic", ...)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimkit.distillation.self_aux import AuxHead, default_layers
from slimkit.dynamic.calibrate import calibrate, collect
from slimkit.dynamic.config import ChannelGating, EarlyExit
from slimkit.dynamic.early_exit import EarlyExitNet, train_exits
from slimkit.dynamic.gating import FBSConv, gate_channels, gate_pairs, init_saliency
from slimkit.dynamic.segments import resolve_layers
from slimkit.errors import ConfigError
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.modelio import call, split, take
from slimkit.registry import Dispatch

__all__ = ["DYNAMIC", "make_dynamic"]

#: ``make_dynamic``'s implementations by config type.
DYNAMIC: Dispatch = Dispatch("make_dynamic")


def _need(loader: Iterable[Any] | None, what: str) -> Iterable[Any]:
    if loader is None:
        raise ConfigError(f"make_dynamic: {what} needs the training loader", hint="make_dynamic(model, config, train_loader)")
    return loader


@DYNAMIC.register(EarlyExit)
def _early_exit(model: nn.Module, config: EarlyExit, loader: Iterable[Any] | None, *, val_loader: Iterable[Any] | None,
                teacher: nn.Module | None, out_dir: str | Path | None) -> EarlyExitNet:
    loader = _need(loader, "early exit (its heads are trained)")
    work = copy.deepcopy(model)
    layers = resolve_layers(work, config.exits if config.exits is not None else default_layers(work))
    EarlyExitNet(work, layers, [nn.Identity()] * len(layers))  # every layer a cut point, before any training
    heads = train_exits(work, layers, loader, config.train, head=config.head, temperature=config.temperature,
                        alpha=config.alpha, train_backbone=config.train_backbone, val_loader=val_loader, out_dir=out_dir)
    net = EarlyExitNet(work, layers, heads, criterion=config.criterion)
    calibration = val_loader if val_loader is not None else loader
    table = collect(net, calibration, max_batches=config.calibration_batches, timed=config.cost == "latency")
    budget, value = config.budget()
    result = calibrate(table, budget, value, cost=config.cost, margin=config.margin, candidates=config.candidates)
    net.set_thresholds(result["thresholds"])
    example = take(split(next(iter(loader))).inputs, 1)
    features, classes = _probe(net, example)
    record_change(net, "early_exit", layers=layers, head=config.head, criterion=config.criterion, features=features,
                  num_classes=classes)
    record_report(net, "make_dynamic", {
        "technique": "early_exit", "config": config.to_dict(), "layers": layers,
        "calibrated_on": "val_loader" if val_loader is not None else "train loader (no val_loader given)",
        "calibration": {k: (v if k != "thresholds" else [float(t) for t in v]) for k, v in result.items()},
    })
    return net


@torch.no_grad()
def _probe(net: EarlyExitNet, example: Any) -> tuple[list[list[int]], int]:
    """The feature shape each head reads (per sample) and the number of classes."""
    was = net.training
    net.eval()
    try:
        shapes, value = [], example
        for segment in net.segments[:-1]:
            value = call(segment, value)
            shapes.append(list(value.shape[1:]))
        classes = int(call(net.all_logits, example)[-1].shape[1])
    finally:
        net.train(was)
    return shapes, classes


def _replay_early_exit(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    heads = [AuxHead(torch.zeros(2, *shape), int(change["num_classes"]), kind=change["head"]) for shape in change["features"]]
    return EarlyExitNet(model, change["layers"], heads, criterion=change["criterion"])


@DYNAMIC.register(ChannelGating)
def _channel_gating(model: nn.Module, config: ChannelGating, loader: Iterable[Any] | None, *,
                    val_loader: Iterable[Any] | None, teacher: nn.Module | None,
                    out_dir: str | Path | None) -> nn.Module:
    from slimkit.distillation.recovery import recover

    loader = _need(loader, "channel gating (its predictors are trained)")
    work = copy.deepcopy(model)
    pairs = gate_pairs(work, config.include, config.exclude)
    gate_channels(work, pairs, density=config.density, sparsity_weight=config.sparsity_weight)
    init_saliency(work, loader)
    source = teacher if teacher is not None else model
    recover(work, source, loader, config.recover, val_loader=val_loader, out_dir=out_dir)
    record_change(work, "channel_gating", layers=dict(pairs), density=config.density)
    gated = [m for m in work.modules() if isinstance(m, FBSConv)]
    record_report(work, "make_dynamic", {
        "technique": "channel_gating", "config": config.to_dict(), "layers": dict(pairs),
        "kept": {name: f"{work.get_submodule(name).keep}/{work.get_submodule(name).conv.out_channels}" for name in pairs},
        "gated_layers": len(gated),
    })
    return work


def _replay_channel_gating(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    return gate_channels(model, dict(change["layers"]), density=float(change["density"]))


for _kind, _replay, _doc in (("early_exit", _replay_early_exit, "exit heads after chosen layers (EarlyExitNet)"),
                             ("channel_gating", _replay_channel_gating, "convs gated per sample (FBS)")):
    if _kind not in CHANGES:
        CHANGES.add(_kind, _replay, doc=_doc)


def make_dynamic(model: nn.Module, config: EarlyExit | ChannelGating, loader: Iterable[Any] | None = None, *,
                 val_loader: Iterable[Any] | None = None, teacher: nn.Module | None = None,
                 out_dir: str | Path | None = None) -> nn.Module:
    """A dynamic version of ``model`` as ``config`` says (see the module docstring); ``model``
    itself is not changed. ``out_dir`` keeps the training run's checkpoints and metrics.

    >>> make_dynamic(nn.Linear(2, 2), {"density": 0.5})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: make_dynamic() takes a config object (EarlyExit, ChannelGating), got dict
      hint: build one, e.g. EarlyExit.from_dict(data)
    """
    return DYNAMIC.lookup(config)(model, config, loader, val_loader=val_loader, teacher=teacher, out_dir=out_dir)
