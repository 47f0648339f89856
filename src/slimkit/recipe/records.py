"""Typed readers for the JSON files a run folder holds.

Run folders are data that anyone may have edited. Every file slimkit reads back is parsed
here: size-capped, valid UTF-8, valid JSON, an object, and the fields slimkit uses checked for
type. A problem is one :class:`~slimkit.errors.CheckpointError` line naming the file and the
field, never a traceback from deep inside the runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.data import DataConfig
from slimkit.errors import CheckpointError, ConfigError

#: Larger JSON files than this are refused before they are read (a run's biggest, metrics.json
#: with per-layer tables and per-epoch histories, is a few hundred KB).
MAX_JSON_BYTES = 64 << 20
#: Deeper nesting than this is refused (json.loads would recurse into a RecursionError).
MAX_DEPTH = 64

R = TypeVar("R", bound=BaseModel)
FRESH = "start a new run with another --out, or restore the file"


def read_json(path: Path, *, what: str = "file") -> Any:
    """``path``'s JSON, checked: present, not huge, UTF-8, valid, not absurdly nested."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: the {what} is missing", hint=FRESH) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the {what} ({exc.strerror})", hint=FRESH) from None
    if size > MAX_JSON_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes is too large for a slimkit {what}", hint=FRESH)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path}: not UTF-8 text (byte {exc.start})", hint=FRESH) from None
    _check_depth(text, path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})", hint=FRESH) from None


def _check_depth(text: str, path: Path) -> None:
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            escaped = char == "\\" and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string, escaped = True, False
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise CheckpointError(f"{path}: nested more than {MAX_DEPTH} levels deep", hint=FRESH)
        elif char in "]}":
            depth -= 1


def parse(cls: type[R], data: Any, path: Path) -> R:
    """``data`` validated as ``cls``; the first problem as one line naming the file and field."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}", hint=FRESH)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(top)"
        shown = repr(error.get("input"))
        raise CheckpointError(f"{path}: field '{field}': {error['msg']} (got {shown[:60]})", hint=FRESH) from None


class Record(BaseModel):
    """A file slimkit wrote: the fields it reads are typed; anything else is kept as it is."""

    model_config = ConfigDict(extra="allow")


class StageStatus(Record):
    number: int = Field(ge=1)
    name: str
    type: str
    folder: str = Field(pattern=r"^[0-9]{2}-[A-Za-z0-9_][A-Za-z0-9_-]*$")
    state: Literal["pending", "running", "done", "failed"]
    seconds: float | None = None
    error: str | None = None


class StatusFile(Record):
    recipe: str
    stages: list[StageStatus]
    state: Literal["running", "done", "failed"]
    original: int = Field(ge=0)
    source: Literal["pending", "done"]


class MetricsFile(Record):
    number: int = Field(ge=1)
    name: str
    type: str
    quality: dict[str, Any]
    cost: dict[str, Any]
    data: dict[str, Any]
    source: dict[str, Any]
    layers: dict[str, dict[str, Any]]
    artifact: str | None = None

    def data_config(self) -> DataConfig:
        return DataConfig.from_dict(self.data["config"]) if "config" in self.data else DataConfig.from_dict(self.data)


class OriginalFile(Record):
    number: int = Field(ge=0)
    folder: str
    quality: dict[str, Any]
    cost: dict[str, Any]
    latency: dict[str, Any]
    data: dict[str, Any]
    input_shape: list[int] | None = None
    inputs: dict[str, Any] | None = None
    layers: dict[str, dict[str, Any]]
    model: dict[str, Any]


def read_status(path: Path) -> StatusFile:
    return parse(StatusFile, read_json(path, what="run status"), path)


def read_metrics(path: Path) -> MetricsFile:
    return parse(MetricsFile, read_json(path, what="stage record"), path)


def read_original(path: Path) -> OriginalFile:
    return parse(OriginalFile, read_json(path, what="original model's record"), path)


def read_resolved(path: Path) -> Any:
    """The recipe a run was started with (``recipe.resolved.json``), validated as a Recipe."""
    from slimkit.recipe.loader import validate_recipe

    data = read_json(path, what="resolved recipe")
    try:
        return validate_recipe(data, source=str(path))
    except ConfigError as exc:
        raise CheckpointError(str(exc).split("\n  hint:")[0], hint=FRESH) from None


def inside(root: Path, relative: str, what: str, source: Path) -> Path:
    """``root / relative``, refused unless it resolves inside ``root`` (no ``..`` or absolute escapes)."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise CheckpointError(f"{source}: the {what} path {relative!r} points outside the run folder {root}",
                              hint="run folders are data: their paths must stay inside them")
    return target
