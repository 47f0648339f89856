"""Command-line flags generated from config fields, so defaults and valid values live in one place.

A technique command builds a one-stage recipe; each of its flags names the recipe field it sets
(``Flag("--ratio", "structured.ratio", ...)``, relative to the command's stage, or
``"recipe:data.limit"`` for a top-level field). The flag's type, its choices and the default
shown in ``--help`` are read from that field of the stage's config class; the flag itself has no
default, so an absent flag leaves the config's own default in force. A given flag becomes a
``--set``-style override, the same mechanism as ``--set`` itself.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from slimkit.errors import ConfigError

RECIPE = "recipe:"


@dataclass(frozen=True)
class Flag:
    """``name`` (``--target-macs``) sets the recipe field ``path``. ``value`` makes it a switch that
    sets that value (``--no-distill`` sets ``finetune.distill_from`` to ``none``)."""

    name: str
    path: str
    help: str
    value: Any = None
    switch: bool = False

    @property
    def dest(self) -> str:
        return "flag_" + self.name.lstrip("-").replace("-", "_")


def switch(name: str, path: str, value: Any, help: str) -> Flag:
    return Flag(name, path, help, value=value, switch=True)


def _field(model: type[BaseModel], path: str) -> Any:
    """The pydantic FieldInfo at a dotted ``path`` below ``model`` (through nested configs)."""
    info = None
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            raise ConfigError(f"command flag path '{path}' names no field of {getattr(model, '__name__', model)}")
        info = model.model_fields[part]
        model = next((t for t in _members(info.annotation) if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return info


def _members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation]


def _kind(annotation: Any) -> dict[str, Any]:
    """argparse options for a field's annotation."""
    kinds = [m for m in _members(annotation) if m is not type(None)]
    first = kinds[0] if kinds else str
    origin = typing.get_origin(first)
    if origin is Literal:
        return {"choices": [str(c) for c in typing.get_args(first)], "type": str}
    if origin in (tuple, list) or first in (tuple, list):
        args = [a for a in typing.get_args(first) if a is not Ellipsis]
        item = args[0] if args else str
        return {"nargs": "+", "action": "extend", "type": item if item in (int, float, str) else yaml.safe_load}
    if first is bool:
        return {"action": argparse.BooleanOptionalAction}
    if first in (int, float, str):
        return {"type": first}
    return {"type": yaml.safe_load}  # dicts and anything richer: a YAML value, as with --set


def _default(info: Any) -> Any:
    if info.default is not PydanticUndefined:
        return info.default
    if info.default_factory is not None:
        return info.default_factory()
    return None


def add_flags(parser: argparse._ActionsContainer, flags: Sequence[Flag], stage: type[BaseModel],
              recipe: type[BaseModel]) -> None:
    """Add ``flags`` to ``parser``; types, choices and shown defaults come from the config fields."""
    for flag in flags:
        owner, path = (recipe, flag.path[len(RECIPE):]) if flag.path.startswith(RECIPE) else (stage, flag.path)
        info = _field(owner, path)
        if flag.switch:
            parser.add_argument(flag.name, dest=flag.dest, action="store_const", const=flag.value,
                                default=argparse.SUPPRESS, help=flag.help)
            continue
        default = _default(info)
        shown = "" if default is None or isinstance(default, BaseModel) else f" (default: {_plain(default)})"
        kind = _kind(info.annotation)
        if "choices" not in kind and kind.get("action") is not argparse.BooleanOptionalAction:
            kind["metavar"] = flag.name.lstrip("-").upper().replace("-", "_")
        parser.add_argument(flag.name, dest=flag.dest, default=argparse.SUPPRESS, help=flag.help + shown, **kind)


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    return str(value)


def overrides(args: argparse.Namespace, flags: Sequence[Flag], stage: str) -> list[str]:
    """The given flags as ``--set`` overrides (``stage.path=value`` or ``path=value``)."""
    out = []
    for flag in flags:
        if not hasattr(args, flag.dest):
            continue
        value = getattr(args, flag.dest)
        target = flag.path[len(RECIPE):] if flag.path.startswith(RECIPE) else f"{stage}.{flag.path}"
        out.append(f"{target}={encode(value)}")
    return out


def encode(value: Any) -> str:
    """A value as the YAML text ``--set`` reads back to the same value."""
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("\n...").strip()
