"""The verb: ``prune(model, config, loader=None, *, example_inputs=None) -> model``.

The config's *type* chooses the technique (UnstructuredPruning or StructuredPruning); both
change ``model`` in place and return it (deep-copy first to keep the original). If pruning
fails, the model is left as it was: structured pruning cuts a copy and swaps it in on success.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from slimkit.distillation.teachers import PROVIDED
from slimkit.pruning.config import StructuredPruning, UnstructuredPruning
from slimkit.registry import Dispatch

#: ``prune``'s implementations by config type.
PRUNE: Dispatch = Dispatch("prune")


@PRUNE.register(UnstructuredPruning)
def _unstructured(model: nn.Module, config: UnstructuredPruning, loader: Iterable[Any] | None,
                  example_inputs: Any) -> nn.Module:
    from slimkit.pruning.unstructured import prune_unstructured

    return prune_unstructured(model, config)


@PRUNE.register(StructuredPruning)
def _structured(model: nn.Module, config: StructuredPruning, loader: Iterable[Any] | None,
                example_inputs: Any) -> nn.Module:
    from slimkit.pruning.surgery import prune_structured

    return prune_structured(model, config, example_inputs, loader=loader)


def prune(model: nn.Module, config: Any, loader: Iterable[Any] | None = None,
          *, example_inputs: Any = None) -> nn.Module:
    """Prune ``model`` in place as ``config`` says and return it.

    ``loader`` feeds the data-driven criteria (taylor, activation) and, like ``example_inputs``
    (one input batch: a tensor, a tuple of tensors or a dict of named tensors, as
    :mod:`slimkit.modelio` reads them), lets structured pruning trace a model that did not record
    its inputs.

    >>> from slimkit.models import build_model
    >>> net = build_model("mlp", hidden=[32], input_size=8)
    >>> prune(net, StructuredPruning(ratio=0.25)).features[0].fc.out_features
    24
    >>> prune(net, {"ratio": 0.25})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: prune() takes a config object (UnstructuredPruning, StructuredPruning, AttentionPruning), got dict
      hint: build one, e.g. UnstructuredPruning.from_dict(data)
    """
    return PRUNE.lookup(config)(model, config, loader, example_inputs)


def _cut_to_widths(model: nn.Module, ratios: dict[str, float], criterion: str, example: Any) -> nn.Module:
    """A teacher cut structurally to a narrower student's widths (the student starts from it)."""
    return prune(model, StructuredPruning(ratios=ratios, criterion=criterion, max_layer_ratio=0.999), example)


if "cut_to_widths" not in PROVIDED:
    PROVIDED.add("cut_to_widths", _cut_to_widths)
