"""Derive a student's architecture from its teacher's with width and depth multipliers.

``derive_student(teacher, width=0.25)`` reads the teacher's registry spec (``slimkit_spec``,
attached by ``build_model``) and scales it: ``width`` multiplies the model's ``width`` knob
(channels and hidden units), ``depth`` scales the layer count where the model has one
(cnn: convs per stage; mlp: hidden layers; resnet: blocks per stage; transformers: layers).
Transformers (``hf_bert``, ``hf_vit``, ``hf``) scale ``hidden_size`` and ``intermediate_size``
with ``width``, keeping their head count. A shallower transformer student starts from its
teacher's layers with :func:`slimkit.distillation.layers.init_from_layers` (DistilBERT).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from slimkit.errors import ConfigError


def _cnn_depth(kwargs: dict[str, Any], depth: float) -> None:
    kwargs["convs_per_stage"] = max(1, round(kwargs.get("convs_per_stage", 1) * depth))


def _mlp_depth(kwargs: dict[str, Any], depth: float) -> None:
    hidden = list(kwargs.get("hidden", []))
    if hidden:
        n = max(1, round(len(hidden) * depth))
        kwargs["hidden"] = hidden[:n] + [hidden[-1]] * (n - len(hidden))


def _resnet_depth(kwargs: dict[str, Any], depth: float) -> None:
    blocks = (kwargs.get("depth", 20) - 2) // 6
    kwargs["depth"] = 6 * max(1, round(blocks * depth)) + 2


def _layers_depth(kwargs: dict[str, Any], depth: float) -> None:
    kwargs["layers"] = max(1, round(kwargs.get("layers", 4) * depth))


def _hf_depth(kwargs: dict[str, Any], depth: float) -> None:
    config = kwargs.setdefault("config", {})
    config["num_hidden_layers"] = max(1, round(config.get("num_hidden_layers", 12) * depth))


#: How each registered model scales its depth; models not listed only accept depth=1.
DEPTH_RULES: dict[str, Callable[[dict[str, Any], float], None]] = {
    "cnn": _cnn_depth,
    "mlp": _mlp_depth,
    "resnet": _resnet_depth,
    "hf_bert": _layers_depth,
    "hf_vit": _layers_depth,
    "hf": _hf_depth,
}


def _transformer_width(fields: dict[str, Any], width: float, heads_key: str, hidden_default: int,
                       ffn_default: int) -> None:
    """Scale a transformer's width keeping its head count: hidden size a multiple of the heads."""
    heads = int(fields.get(heads_key, 12))
    fields["hidden_size"] = heads * max(1, round(fields.get("hidden_size", hidden_default) * width / heads))
    fields["intermediate_size"] = max(1, round(fields.get("intermediate_size", ffn_default) * width))


#: Models whose width is not one ``width`` knob: how they scale it instead.
WIDTH_RULES: dict[str, Callable[[dict[str, Any], float], None]] = {
    "hf_bert": lambda kwargs, w: _transformer_width(kwargs, w, "heads", 128, 512),
    "hf_vit": lambda kwargs, w: _transformer_width(kwargs, w, "heads", 64, 128),
    "hf": lambda kwargs, w: _transformer_width(kwargs.setdefault("config", {}), w, "num_attention_heads", 768, 3072),
}


def derive_student(
    teacher: nn.Module | Mapping[str, Any] | tuple[str, Mapping[str, Any]],
    width: float = 0.25,
    depth: float = 1.0,
) -> tuple[str, dict[str, Any]]:
    """The ``(name, kwargs)`` of a student shaped like ``teacher`` but ``width`` times as wide
    and ``depth`` times as deep; build it with ``build_model(name, **kwargs)``.

    ``teacher`` is a model built by ``build_model``, its ``slimkit_spec``, or ``(name, kwargs)``.
    Dropout is reset to 0: a small student underfits rather than overfits.

    >>> derive_student(("cnn", {"channels": [32, 64], "width": 1.0}), width=0.25)
    ('cnn', {'channels': [32, 64], 'width': 0.25})
    >>> derive_student(("mlp", {"hidden": [1200, 1200]}), width=0.5, depth=0.5)[1]["hidden"]
    [1200]
    """
    name, kwargs = _spec_of(teacher)
    for what, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"derive_student: {what} must be a number > 0, got {value!r}")
    kwargs = copy.deepcopy(dict(kwargs))
    if name in WIDTH_RULES:
        if width != 1:
            WIDTH_RULES[name](kwargs, float(width))
    else:
        kwargs["width"] = round(float(kwargs.get("width", 1.0)) * width, 6)
    if "dropout" in kwargs:
        kwargs["dropout"] = 0.0
    if depth != 1:
        rule = DEPTH_RULES.get(name)
        if rule is None:
            raise ConfigError(
                f"derive_student: model '{name}' has no depth knob to scale (depth={depth})",
                hint=f"use depth=1, or a model with one: {', '.join(sorted(DEPTH_RULES))}",
            )
        rule(kwargs, float(depth))
    return name, kwargs


def _spec_of(teacher: Any) -> tuple[str, Mapping[str, Any]]:
    if isinstance(teacher, nn.Module):
        spec = getattr(teacher, "slimkit_spec", None)
        if spec is None:
            raise ConfigError(
                f"cannot derive a student from a {type(teacher).__name__}: it has no slimkit_spec",
                hint="build the teacher with slimkit.models.build_model, or give the student as a registry spec",
            )
        teacher = spec
    if isinstance(teacher, Mapping) and "name" in teacher:
        return str(teacher["name"]), teacher.get("kwargs", {})
    if isinstance(teacher, tuple) and len(teacher) == 2 and isinstance(teacher[1], Mapping):
        return str(teacher[0]), teacher[1]
    raise ConfigError(f"derive_student: expected a model, a spec dict or (name, kwargs), got {teacher!r}")


def student_spec(text: str, teacher: nn.Module) -> tuple[str, dict[str, Any]]:
    """Read a CLI student spec: ``cnn:width=0.25`` (a registry model with knobs) or
    ``width=0.25[,depth=0.5]`` (derived from ``teacher``).

    >>> student_spec("width=0.5", nn.Linear(1, 1))
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: cannot derive a student from a Linear: it has no slimkit_spec
      hint: build the teacher with slimkit.models.build_model, or give the student as a registry spec
    """
    from slimkit.models.spec import parse_knobs, parse_model_spec

    head = text.split(":", 1)[0]
    if "=" in head:  # no model name: multipliers of the teacher
        knobs = parse_knobs(text)
        unknown = sorted(set(knobs) - {"width", "depth"})
        if unknown:
            raise ConfigError(
                f"student spec '{text}': a derived student takes only width and depth, got {', '.join(unknown)}",
                hint="write width=0.25,depth=1 to shrink the teacher, or name a model: cnn:channels=[8,16]",
            )
        return derive_student(teacher, **knobs)
    spec = parse_model_spec(text)
    if spec.name is None:
        raise ConfigError(f"student spec '{text}' names code ({spec.factory}); a student here is a registry model "
                          "or width/depth multipliers of the teacher",
                          hint="build your own student in Python and call slimkit.distill")
    return spec.name, dict(spec.knobs)
