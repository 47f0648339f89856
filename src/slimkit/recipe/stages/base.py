"""The stage registry: each stage type is one registration of (typed config, run function).

A stage's config is a :class:`~slimkit.recipe.schema.StageConfig` that wraps the technique's
own config, by inheriting it (``train`` *is* a TrainConfig plus ``type``/``name``) or by holding
it in a field (``prune.structured`` is a StructuredPruning). Its run function receives a
:class:`~slimkit.recipe.context.StageContext` (the input model, the original, data, folders) and
returns a :class:`StageResult`. Adding a stage type is one file with one ``@stage(...)``::

    class SearchStage(StageConfig):
        type: Literal["search"] = "search"
        trials: int = 20

    @stage("search", SearchStage, doc="search a student architecture", example={"trials": 1})
    def run_search(ctx, config): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from slimkit.config import Config
from slimkit.errors import ConfigError
from slimkit.recipe.fields import ModelSource, StageConfig
from slimkit.registry import Registry

if TYPE_CHECKING:  # annotations only: context imports this module
    from slimkit.recipe.context import DataState, StageContext


@dataclass
class StageResult:
    """What a stage hands back to the runner.

    - ``model``: the model later stages start from (saved in the stage's ``model/`` folder);
    - ``history``: per-epoch training metrics, for the report's training curves;
    - ``info``: technique details for the report (pruning record, ranks, sensitivity...);
    - ``artifact``: a deployable file (or folder) the stage wrote; its bytes are the stage's size
      and, for .onnx/.pt/.pt2, it is what gets timed;
    - ``data``: the data later stages use, when the stage changed it (transfer);
    - ``source``: how to rebuild ``model``'s architecture when it changed (distill's student);
    - ``layers``: per-layer extras (``bits``, ``rank``) merged into the layer table.
    """

    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    artifact: Path | None = None
    data: DataState | None = None
    source: ModelSource | None = None
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)


RunStage = Callable[["StageContext", Any], StageResult]


@dataclass(frozen=True)
class StageType:
    """A registered stage: its config class and its run function."""

    config: type[StageConfig]
    run: RunStage


#: Every stage type by name. Metadata: ``doc`` (one line) and ``example`` (the smallest valid
#: fields besides ``type``, used by the tests that run every registered stage).
STAGES: Registry[StageType] = Registry("stage type")


def stage(name: str, config: type[StageConfig], *, doc: str,
          example: dict[str, Any] | None = None) -> Callable[[RunStage], RunStage]:
    """Register ``run`` as stage type ``name`` with its config class (whose ``type`` default is ``name``)."""
    declared = config.model_fields["type"].default
    if declared != name:
        raise ConfigError(f"stage '{name}': {config.__name__}.type defaults to {declared!r}, not {name!r}",
                          hint=f'declare type: Literal["{name}"] = "{name}" on the config class')

    def decorate(run: RunStage) -> RunStage:
        STAGES.add(name, StageType(config, run), doc=doc, example=dict(example or {}))
        return run

    return decorate


def build_stage(data: dict[str, Any]) -> StageConfig:
    """A stage config from plain data, chosen by its ``type``.

    >>> build_stage({"type": "finetune", "epochs": 2}).epochs
    2
    >>> build_stage({"type": "prnue"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: unknown stage type 'prnue'. Did you mean 'prune'?
    ...
    """
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(f"a stage needs a 'type', got {data!r}", hint=f"types: {', '.join(STAGES.names())}")
    return STAGES.get(str(data["type"])).config.from_dict(data)  # type: ignore[return-value]


def technique(config: StageConfig, cls: type[Config], **changes: Any) -> Any:
    """The technique's own config inside a stage config that inherits it.

    >>> from slimkit.train import TrainConfig
    >>> technique(build_stage({"type": "train", "epochs": 3}), TrainConfig).epochs
    3
    """
    return cls(**{**{k: getattr(config, k) for k in cls.model_fields}, **changes})


def one_of(config: Config, fields: tuple[str, ...], *, default: Any = None) -> tuple[str, Any]:
    """The one field of ``fields`` that is set (``default`` as ``fields[0]`` when none is)."""
    given = [f for f in fields if getattr(config, f) is not None]
    if len(given) > 1:
        raise ValueError(f"give one of {', '.join(fields)}, not {' and '.join(given)}")
    if not given:
        if default is None:
            raise ValueError(f"give one of {', '.join(fields)}")
        return fields[0], default
    return given[0], getattr(config, given[0])
