"""Typed readers for the JSON files a run folder holds.

Run folders are data that anyone may have edited. Every file slimkit reads back is parsed
here: size-capped, valid UTF-8, valid JSON, an object, and the fields slimkit uses checked for
type. A problem is one :class:`~slimkit.errors.CheckpointError` line naming the file and the
field, never a traceback from deep inside the runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimkit.data import DataConfig
from slimkit.errors import CheckpointError, ConfigError
from slimkit.fileio import read_json_checked

R = TypeVar("R", bound=BaseModel)
FRESH = "start a new run with another --out, or restore the file"


def read_json(path: Path, *, what: str = "file") -> Any:
    """``path``'s JSON, checked: present, not huge, UTF-8, valid, not absurdly nested
    (:func:`slimkit.fileio.read_json_checked`)."""
    return read_json_checked(path, what=what, hint=FRESH)


def parse(cls: type[R], data: Any, path: Path) -> R:
    """``data`` validated as ``cls`` (and as its ``Shape``, the figures it must hold); the first
    problem as one line naming the file and field."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}", hint=FRESH)
    try:
        shape = getattr(cls, "Shape", None)
        if shape is not None:
            shape.model_validate(data)
        return cls.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(top)"
        shown = repr(error.get("input"))
        raise CheckpointError(f"{path}: field '{field}': {error['msg']} (got {shown[:60]})", hint=FRESH) from None


class Record(BaseModel):
    """A file slimkit wrote: the fields it reads are typed; anything else is kept as it is."""

    model_config = ConfigDict(extra="allow")


#: Stage numbers beyond this are not a run slimkit wrote (a recipe has a handful of stages).
MAX_STAGES = 10_000
Count = Annotated[int, Field(ge=0, le=2**62)]
Share = Annotated[float, Field(ge=0, le=1)]


class Quality(Record):
    accuracy: Share
    f1: float | None = None
    roc_auc: float | None = None
    ece: float | None = None
    per_class_accuracy: list[float | None] = Field(default_factory=list)
    confusion: list[list[Count]] | None = None
    num_samples: Count | None = None


class Cost(Record):
    params: Count
    macs: Count
    bytes: Count


class Timing(Record):
    median_ms: float | None = Field(None, ge=0)


class Measured(Record):
    """The figures a stage record and the original's record must hold for the report and resume:
    checked in full, while the records themselves keep them as the plain mappings the runner uses."""

    quality: Quality
    cost: Cost
    latency: dict[str, Timing | None] = Field(default_factory=dict)


class FinalSide(Measured):
    deployed: str | None = None


class Agreement(Record):
    agreement: Share
    num_samples: Count
    right_to_wrong: Count
    wrong_to_right: Count


class FinalFile(Record):
    """``final.json``: the original against the final model, as the report shows it."""

    summary: str
    original: FinalSide
    final: FinalSide
    ratios: dict[str, Any]
    same_data: bool = True
    agreement: Agreement | None = None
    class_names: list[str] | None = None
    targets: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


class StageStatus(Record):
    number: int = Field(ge=1, le=MAX_STAGES)
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
    original: int = Field(ge=0, le=MAX_STAGES)
    source: Literal["pending", "done"]


class MetricsFile(Record):
    Shape: ClassVar[type[Record]] = Measured
    number: int = Field(ge=1, le=MAX_STAGES)
    name: str
    type: str
    quality: dict[str, Any]
    cost: dict[str, Any]
    data: dict[str, Any]
    source: dict[str, Any]
    layers: dict[str, dict[str, Any]]
    artifact: str | None = None

    def data_config(self, path: Path | str = "metrics.json") -> DataConfig:
        """The data the stage was measured on; a malformed ``data`` field is a CheckpointError."""
        given = self.data.get("config", self.data)
        try:
            return DataConfig.from_dict(given)
        except ConfigError as exc:
            raise CheckpointError(f"{path}: field 'data' is not a data config: {exc.args[0]}", hint=FRESH) from None


class OriginalFile(Record):
    Shape: ClassVar[type[Record]] = Measured
    number: int = Field(ge=0, le=MAX_STAGES)
    folder: str
    quality: dict[str, Any]
    cost: dict[str, Any]
    latency: dict[str, Any]
    data: dict[str, Any]
    input_shape: list[Annotated[int, Field(ge=1, le=2**31)]] | None = None
    inputs: dict[str, Any] | None = None
    layers: dict[str, dict[str, Any]]
    model: dict[str, Any]


def read_status(path: Path) -> StatusFile:
    return parse(StatusFile, read_json(path, what="run status"), path)


def read_metrics(path: Path) -> MetricsFile:
    """A finished stage's ``metrics.json``, typed (its figures checked, see :class:`Measured`)."""
    return parse(MetricsFile, read_json(path, what="stage record"), path)


def read_original(path: Path) -> OriginalFile:
    return parse(OriginalFile, read_json(path, what="original model's record"), path)


def read_final(path: Path) -> FinalFile:
    return parse(FinalFile, read_json(path, what="final comparison"), path)


def check_run(out: Path) -> None:
    """Read every JSON file of the run folder ``out`` through its typed reader (the status, the
    resolved recipe, the original's and each finished stage's record, the final comparison), so
    a damaged or edited folder is one CheckpointError naming the file and field, before a report
    is built from it. Stage folders come from the status, whose names cannot leave ``out``."""
    status = read_status(out / "status.json")
    read_resolved(out / "recipe.resolved.json")
    for stage in status.stages:
        if (out / stage.folder / "metrics.json").is_file():
            read_metrics(out / stage.folder / "metrics.json")
    if (out / "original.json").is_file():
        read_original(out / "original.json")
    if (out / "final.json").is_file():
        read_final(out / "final.json")


def read_resolved(path: Path) -> Any:
    """The recipe a run was started with (``recipe.resolved.json``), validated as a Recipe."""
    from slimkit.recipe.loader import validate_recipe

    data = read_json(path, what="resolved recipe")
    try:
        return validate_recipe(data, source=str(path))
    except ConfigError as exc:
        raise CheckpointError(str(exc).split("\n  hint:")[0], hint=FRESH) from None


def inside(root: Path, relative: str, what: str, source: Path) -> Path:
    """``root / relative``, refused unless it resolves inside ``root`` (no ``..``, absolute path or
    symbolic link that leads out)."""
    try:
        target = (root / relative).resolve()
        escapes = not target.is_relative_to(root.resolve())
    except (OSError, ValueError) as exc:  # a NUL byte, a path too long, a symlink loop
        raise CheckpointError(f"{source}: the {what} path {relative!r:.80} is not a usable path ({exc})",
                              hint="run folders are data: their paths must stay inside them") from None
    if escapes:
        raise CheckpointError(f"{source}: the {what} path {relative!r} points outside the run folder {root}",
                              hint="run folders are data: their paths must stay inside them")
    return target
