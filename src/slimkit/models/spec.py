"""Model specs as people type them on a command line.

- ``cnn`` or ``cnn:channels=[8,16],hidden=32``: a registry model with knobs;
- ``mypkg.nets:make`` or ``mypkg.nets:make:width=2``: the user's own factory (``module:function``),
  called with the knobs as keyword arguments (a registered model name before the colon always
  means the registry model). Naming it is what trusts it: slimkit imports code
  only from references the user passes explicitly.

Knob values are read as YAML scalars or lists, so numbers, booleans and lists need no quoting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from slimkit.errors import ConfigError

#: ``package.module:function`` (dotted names on both sides).
REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: a registry ``name`` or a ``factory`` reference, and its ``knobs``."""

    name: str | None = None
    factory: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The label the spec names (``cnn`` or ``mypkg.nets:make``)."""
        return self.name or self.factory or "?"


def parse_model_spec(text: str) -> ModelSpec:
    """Read ``name[:key=value,...]`` or ``module:function[:key=value,...]``.

    >>> parse_model_spec("cnn:channels=[8,16],hidden=16")
    ModelSpec(name='cnn', factory=None, knobs={'channels': [8, 16], 'hidden': 16})
    >>> parse_model_spec("mypkg.nets:make:width=2")
    ModelSpec(name=None, factory='mypkg.nets:make', knobs={'width': 2})
    >>> parse_model_spec("cnn:width=0.5,width=0.25")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: model knob 'width' is given twice in 'cnn:width=0.5,width=0.25'
      hint: give each knob once
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the model spec is empty", hint="e.g. --model cnn:channels=[8,16] or --model mypkg.nets:make")
    from slimkit.models._registry import is_model

    head, sep, rest = text.strip().partition(":")
    second, _, third = rest.partition(":")
    if not is_model(head) and sep and second and "=" not in second and REFERENCE.fullmatch(f"{head}:{second}"):
        return ModelSpec(factory=f"{head}:{second}", knobs=parse_knobs(third, text))
    return ModelSpec(name=head.strip(), knobs=parse_knobs(rest, text))


def parse_knobs(text: str, whole: str = "") -> dict[str, Any]:
    """``a=1,b=[2,3]`` -> ``{"a": 1, "b": [2, 3]}``; a key given twice is an error.

    >>> parse_knobs("depth=0.5,channels=[8, 16]")
    {'depth': 0.5, 'channels': [8, 16]}
    """
    whole = whole or text
    knobs: dict[str, Any] = {}
    for item in split_top_level(text):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"model knob '{item}' in '{whole}' is not key=value",
                              hint="write the model as name:key=value,key=value, e.g. cnn:channels=[8,16]")
        if key in knobs:
            raise ConfigError(f"model knob '{key}' is given twice in '{whole}'", hint="give each knob once")
        try:
            knobs[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"model knob '{key}' in '{whole}' has a value that is not a number, word or list: "
                              f"{value!r}", hint="e.g. channels=[8,16], width=0.5, global_pool=true") from None
    return knobs


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets.

    >>> split_top_level("a=[1,2],b=3")
    ['a=[1,2]', 'b=3']
    """
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[("
        depth -= char in "])"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]
