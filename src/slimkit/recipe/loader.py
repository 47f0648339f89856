"""Load a recipe from YAML and validate all of it before anything runs.

Every problem is reported at once, each as ``FILE:LINE: FIELD: what is wrong``: the YAML node
tree (``yaml.compose``) maps field paths to lines, and an override's problem names the ``--set``
that caused it. A recipe is data only: it is read by :mod:`slimkit.recipe.yamldata` (limits on
size, aliases and nesting checked first, then ``yaml.SafeLoader``), and any YAML tag
(``!!python/object``, ``!include``, ...) is refused before anything is constructed.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError, create_model

from slimkit.errors import ConfigError
from slimkit.recipe.overrides import Path, apply_overrides, display_path, internal_path
from slimkit.recipe.schema import Recipe, StageConfig, recipe_problems
from slimkit.recipe.yamldata import MAX_BYTES, MERGE, PLAIN_TAGS, STR, compose, construct
from slimkit.registry import did_you_mean

_TopLevel: type[BaseModel] = create_model(  # the recipe's fields minus stages, which are checked one by one
    "Recipe", __base__=Recipe.__base__,
    **{n: (f.annotation, f) for n, f in Recipe.model_fields.items() if n != "stages"},  # type: ignore[call-overload]
)


def _walk(node: yaml.Node, path: Path, marks: dict[Path, int], source: str) -> None:
    """Record the line of every field path; refuse tags, non-scalar keys and repeated keys.
    (The tree is within :mod:`~slimkit.recipe.yamldata`'s limits, so this recursion is shallow.)"""
    line = node.start_mark.line + 1
    if node.tag not in PLAIN_TAGS:
        raise ConfigError(f"{source}:{line}: {display_path(path) or '(top)'}: the YAML tag '{node.tag}' is not allowed",
                          hint="a recipe is plain data and cannot run code; remove the tag")
    marks.setdefault(path, line)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: {display_path(path) or '(top)'}: "
                                  "a mapping key must be a plain name, not a list or mapping", hint="write the key as text")
            key = key_node.value
            if key_node.tag not in (STR, MERGE):  # 1:, true:, null: are keys of other types
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: {display_path(path) or '(top)'}: the key "
                                  f"{key[:40]!r} is read as {key_node.tag.rsplit(':', 1)[-1]}, not text",
                                  hint="put it in quotes")
            if key in seen:
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: {display_path((*path, key))}: "
                                  "this key appears twice in the same mapping", hint="keep one of them")
            seen.add(key)
            _walk(key_node, (*path, key), marks, source)
            marks[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), marks, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), marks, source)


def read_yaml(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """Plain data and the line of every field path, within the limits of
    :mod:`slimkit.recipe.yamldata` (a YAML bomb or a 5000-deep list is one ConfigError)."""
    node = compose(text, source)
    marks: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), marks, source)
    return construct(node, source), marks


def _model_at(cls: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class a field path leads to (for did-you-mean), or None."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        found = [a for a in _flatten(field.annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not found:
            return None
        cls = found[0]
    return cls


def _flatten(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [annotation] if not args else [a for arg in args for a in _flatten(arg)]


def _clean_loc(data: Any, loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """Drop the union-member labels pydantic adds to locations: keep parts that exist in the data."""
    kept: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, dict) and part in node or isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif not last:
            continue
        kept.append(part)
    return tuple(kept)


def _message(error: dict[str, Any], cls: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    if error["type"] == "extra_forbidden":
        owner = _model_at(cls, loc[:-1])
        known = list(owner.model_fields) if owner else []
        hint = f" Valid fields: {', '.join(known)}." if known else ""
        return f"unknown field '{loc[-1]}'.{did_you_mean(str(loc[-1]), known)}{hint}"
    if error["type"] == "missing":
        return "this field is required"
    text = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    shown = repr(error.get("input"))
    return f"{text} (got {shown[:60] + '...' if len(shown) > 60 else shown})"


def pydantic_errors(exc: BaseException | None) -> list[dict[str, Any]]:
    """Every leaf error under ``exc`` with its full location.

    Config classes turn pydantic's report into one ConfigError in ``__init__``, and pydantic nests
    that as a "value error" of the outer model; the original report survives as the ConfigError's
    ``__context__``, so the tree is walked back down to the fields that were really wrong.
    """
    inner = exc if isinstance(exc, ValidationError) else getattr(exc, "__context__", None)
    if not isinstance(exc, (ValidationError, ConfigError)) or not isinstance(inner, ValidationError):
        return []
    out: list[dict[str, Any]] = []
    for error in inner.errors():
        nested = pydantic_errors((error.get("ctx") or {}).get("error"))
        out += [{**n, "loc": (*error["loc"], *n["loc"])} for n in nested] if nested else [error]
    return out


def _stage_errors(raw: Any, errors: list[tuple[Path, str]]) -> list[StageConfig]:
    from slimkit.recipe.stages import STAGES

    if raw is None:
        errors.append((("stages",), "a recipe needs at least one stage"))
        return []
    if not isinstance(raw, list):
        errors.append((("stages",), f"expected a list of stages, got {type(raw).__name__}"))
        return []
    built = []
    types = ", ".join(STAGES.names())
    for index, item in enumerate(raw):
        here: Path = ("stages", index)
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            where = (*here, "type") if isinstance(item, dict) and "type" in item else here
            errors.append((where, f"a stage is a mapping with a 'type' (one of {types})"))
            continue
        if item["type"] not in STAGES:
            name = str(item["type"])
            known = f"unknown stage type '{name}'.{did_you_mean(name, STAGES.names())} Known: {types}"
            errors.append(((*here, "type"), known))
            continue
        cls = STAGES.get(item["type"]).config
        try:
            built.append(cls.model_validate(item))
        except (ValidationError, ConfigError) as exc:
            for error in pydantic_errors(exc) or [{"type": "value_error", "loc": (), "msg": str(exc), "input": item}]:
                loc = _clean_loc(item, error["loc"])
                errors.append(((*here, *loc), _message(error, cls, loc)))
    return built


def validate_recipe(data: Any, *, source: str = "<recipe>", marks: dict[Path, int] | None = None,
                    origins: dict[Path, str] | None = None) -> Recipe:
    """Validate plain recipe data; raise one ConfigError listing every problem with its line."""
    marks, origins = marks or {}, origins or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a recipe is a mapping of fields (name, data, model, stages, ...), "
                          f"got {type(data).__name__}")
    errors: list[tuple[Path, str]] = []
    stages = _stage_errors(data.get("stages"), errors)
    top = {k: v for k, v in data.items() if k != "stages"}
    try:
        validated = _TopLevel.model_validate(top)
    except (ValidationError, ConfigError) as exc:
        for error in pydantic_errors(exc) or [{"type": "value_error", "loc": (), "msg": str(exc), "input": top}]:
            loc = _clean_loc(top, error["loc"])
            errors.append((loc, _message(error, Recipe, loc)))
    else:
        if not errors:
            fields = {name: getattr(validated, name) for name in type(validated).model_fields}
            candidate = Recipe.model_construct(**fields, stages=stages)
            errors += [(internal_path(path), message) for path, message in recipe_problems(candidate)]
    if errors:
        lines = [_locate(path, message, source, marks, origins) for path, message in errors]
        head = f"{len(lines)} problems in the recipe:\n  " if len(lines) > 1 else ""
        raise ConfigError(head + "\n  ".join(lines), hint="fix the fields named above; `slimkit run --dry-run` checks a recipe")
    return Recipe.model_validate({**top, "stages": stages})


def _locate(path: Path, message: str, source: str, marks: dict[Path, int], origins: dict[Path, str]) -> str:
    for i in range(len(path), 0, -1):
        if path[:i] in origins:
            return f"--set {origins[path[:i]]}: {display_path(path)}: {message}"
    line = next((marks[path[:i]] for i in range(len(path), -1, -1) if path[:i] in marks), None)
    where = f"{source}:{line}" if line is not None else source
    label = ""
    if len(path) >= 2 and path[0] == "stages":
        label = f" (stage {path[1] + 1})" if isinstance(path[1], int) else ""
    return f"{where}: {display_path(path) or '(top)'}{label}: {message}"


def parse_recipe(text: str, *, source: str = "<recipe>", overrides: Sequence[str] = ()) -> Recipe:
    """A validated Recipe from YAML text, with ``--set`` style ``overrides`` applied first.

    >>> r = parse_recipe("model: {registry: mlp}\\nstages:\\n  - {type: train, epochs: 2}\\n",
    ...                  overrides=["train.epochs=1"])
    >>> r.stages[0].epochs
    1
    >>> parse_recipe("model: {registry: mlp}\\nstages:\\n  - {type: train, epohcs: 2}\\n", source="r.yaml")
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: r.yaml:3: stages.1.epohcs (stage 1): unknown field 'epohcs'. Did you mean 'epochs'? ...
    ...
    """
    data, marks = read_yaml(text, source)
    fields = list(Recipe.model_fields)
    origins: dict[Path, str] = {}
    if overrides and isinstance(data, dict):
        data, origins = apply_overrides(data, overrides, fields)
    return validate_recipe(data, source=source, marks=marks, origins=origins)


def load_recipe(path: str | FilePath, *, overrides: Sequence[str] = ()) -> Recipe:
    """Read and validate the recipe file at ``path`` (see :func:`parse_recipe`): at most
    :data:`~slimkit.recipe.yamldata.MAX_BYTES`, UTF-8 text."""
    path = FilePath(path)
    if not path.is_file():
        raise ConfigError(f"no recipe file at {path}", hint="example recipes live in the recipes/ folder, "
                                                             "e.g. recipes/fashion-mnist.yaml")
    return parse_recipe(read_recipe_text(path), source=str(path), overrides=overrides)


def read_recipe_text(path: FilePath) -> str:
    """The text of a recipe file, refused when it is too large or not UTF-8."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is too large for a recipe (at most {MAX_BYTES:,})",
                              hint="a recipe is a short YAML file; is this the right file?")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the recipe {path}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})",
                          hint="save the recipe as UTF-8") from None
