"""The verb: ``prune(model, config, example_inputs=None, *, loader=None) -> model``.

The config's *type* chooses the technique (UnstructuredPruning or StructuredPruning); both
change ``model`` in place and return it (deep-copy first to keep the original).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.prune.config import StructuredPruning, UnstructuredPruning


def _unstructured(model: nn.Module, config: UnstructuredPruning, example_inputs: Tensor | None,
                  loader: Iterable[Any] | None) -> nn.Module:
    from slimkit.prune.unstructured import prune_unstructured

    return prune_unstructured(model, config)


def _structured(model: nn.Module, config: StructuredPruning, example_inputs: Tensor | None,
                loader: Iterable[Any] | None) -> nn.Module:
    from slimkit.prune.structured import prune_structured

    return prune_structured(model, config, example_inputs, loader=loader)


HANDLERS: dict[type, Callable[..., nn.Module]] = {
    UnstructuredPruning: _unstructured,
    StructuredPruning: _structured,
}


def prune(model: nn.Module, config: UnstructuredPruning | StructuredPruning, example_inputs: Tensor | None = None,
          *, loader: Iterable[Any] | None = None) -> nn.Module:
    """Prune ``model`` in place as ``config`` says and return it.

    ``example_inputs`` (one input batch) lets structured pruning trace the model; registry
    models and a ``loader`` supply one when it is omitted. ``loader`` also feeds the data-driven
    criteria (taylor, activation).

    >>> from slimkit.models import build_model
    >>> net = build_model("mlp", hidden=[32], input_size=8)
    >>> prune(net, StructuredPruning(ratio=0.25)).features[0].fc.out_features
    24
    >>> prune(net, {"ratio": 0.25})
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: prune() takes an UnstructuredPruning or StructuredPruning config, got dict
      hint: build one, e.g. StructuredPruning.from_dict(data)
    """
    handler = HANDLERS.get(type(config))
    if handler is None:
        raise ConfigError(
            f"prune() takes an UnstructuredPruning or StructuredPruning config, got {type(config).__name__}",
            hint="build one, e.g. StructuredPruning.from_dict(data)",
        )
    return handler(model, config, example_inputs, loader)
