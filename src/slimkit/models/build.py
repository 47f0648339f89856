"""Build registered models by name, with a JSON spec attached so persistence can rebuild them."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from slimkit.errors import ConfigError
from slimkit.models._registry import factory
from slimkit.registry import did_you_mean

#: The teacher used by examples and recipes: conv 32-64-128 (BN) + fc 256, 390,634 parameters.
#: Treat as read-only; copy the dict before changing it.
DEFAULT_TEACHER: tuple[str, dict[str, Any]] = (
    "cnn", {"channels": (32, 64, 128), "hidden": 256, "dropout": 0.25},
)
#: The student it is distilled into: conv 8-16 (BN) + fc 16, 14,002 parameters.
DEFAULT_STUDENT: tuple[str, dict[str, Any]] = ("cnn", {"channels": (8, 16), "hidden": 16})


def model_knobs(name: str) -> dict[str, Any]:
    """Return the knobs of model ``name`` with their defaults, read from its factory signature.

    >>> model_knobs("lenet5")["channels"]
    (6, 16)
    """
    return {
        p.name: p.default
        for p in inspect.signature(factory(name)).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _jsonable(value: Any, path: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(
        f"model kwarg '{path}' is a {type(value).__name__}, which cannot be saved in a model spec",
        hint="pass plain numbers, strings, booleans or lists of them",
    )


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name`` from the registry and attach ``model.slimkit_spec``.

    The spec is ``{"name": name, "kwargs": {...}}`` holding *every* knob (defaults filled in,
    tuples as lists), so ``build_model(spec["name"], **spec["kwargs"])`` rebuilds the same
    architecture even if a default changes later.

    >>> net = build_model("cnn", channels=(8, 16), hidden=16)
    >>> net.slimkit_spec["kwargs"]["channels"], net.slimkit_spec["kwargs"]["num_classes"]
    ([8, 16], 10)
    >>> build_model("cnn", chanels=[8])
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: model 'cnn' has no knob 'chanels'. Did you mean 'channels'?
      hint: valid knobs for 'cnn': in_channels, num_classes, input_size, channels, convs_per_stage, hidden, dropout, global_pool, width
    """
    knobs = model_knobs(name)
    unknown = [k for k in kwargs if k not in knobs]
    if unknown:
        quoted = ", ".join(f"'{k}'" for k in unknown)
        raise ConfigError(
            f"model '{name}' has no knob {quoted}.{did_you_mean(unknown[0], list(knobs))}",
            hint=f"valid knobs for '{name}': {', '.join(knobs)}",
        )
    resolved = {**knobs, **kwargs}
    spec = {"name": name, "kwargs": _jsonable(resolved, name)}
    model = factory(name)(**kwargs)
    model.slimkit_spec = spec
    # every zoo model takes (N, C, H, W) floats; a factory that takes other inputs records its own
    if getattr(model, "slimkit_inputs", None) is None and {"in_channels", "input_size"} <= set(resolved):
        size = resolved["input_size"]
        model.slimkit_inputs = {"kind": "tensor", "tensors": [
            {"name": "input", "shape": [resolved["in_channels"], size, size], "dtype": "float32"}]}
    return model
