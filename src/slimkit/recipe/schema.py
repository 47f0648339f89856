"""The recipe: where the model comes from, the data, and an ordered list of typed stages.

A recipe is data, never code. The one way it can name the user's code is an explicit
``module:function`` model factory (``model.factory``), which the runner imports and calls.

    name: fashion-mnist
    seed: 0
    data: {name: fashion-mnist, batch_size: 128}
    model: {registry: cnn, knobs: {channels: [32, 64, 128], hidden: 256}}
    stages:
      - {type: train, name: teacher, epochs: 6}
      - {type: distill, student: {registry: cnn, knobs: {channels: [16, 32], hidden: 64}}}
      - {type: export, format: onnx}
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from slimkit.config import Config
from slimkit.data import DataConfig
from slimkit.registry import did_you_mean

#: Stage names become folder names and override prefixes: no dots, slashes or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
#: ``original: source`` compares every stage with the model as loaded, before any stage.
SOURCE = "source"


class ModelSource(Config):
    """Where a model comes from: exactly one of ``registry`` (slimkit's zoo, with ``knobs``), ``run``
    (a run folder or saved-model folder) or ``factory`` (``package.module:function``, the user's
    own code, called with ``knobs`` as keyword arguments). ``run`` with ``factory`` loads a saved
    custom model whose architecture the factory builds.

    A factory is code: it is imported only when the user trusts it explicitly (``--model`` on the
    command line, or ``--trust-code`` for a recipe file; see :class:`slimkit.imports.Trust`).

    The zoo gets ``in_channels``, ``num_classes`` and ``input_size`` from the data unless set.

    >>> ModelSource(registry="cnn", knobs={"channels": [8, 16]}).kind
    'registry'
    >>> ModelSource(registry="cnm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: ModelSource: field 'registry': Value error, unknown model 'cnm'. Did you mean 'cnn'? ...
    """

    registry: str | None = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    run: str | None = None
    factory: str | None = None

    @field_validator("registry")
    @classmethod
    def _known_model(cls, name: str | None) -> str | None:
        from slimkit.models import is_model, model_names

        if name is not None and not is_model(name):
            raise ValueError(f"unknown model '{name}'.{did_you_mean(name, model_names())} Known: {', '.join(model_names())}")
        return name

    @field_validator("factory")
    @classmethod
    def _reference(cls, ref: str | None) -> str | None:
        if ref is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", ref):
            raise ValueError(f"'{ref}' is not a code reference; write it as package.module:function")
        return ref

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSource:
        given = [k for k in ("registry", "run", "factory") if getattr(self, k) is not None]
        if len(given) != 1 and given != ["run", "factory"]:
            raise ValueError(f"give exactly one of registry, run or factory, or run with a factory "
                             f"(got {', '.join(given) or 'none'})")
        if self.knobs and self.run is not None and self.factory is None:
            raise ValueError("knobs apply to registry and factory models, not to a saved run")
        if self.registry is not None:
            from slimkit.models import model_knobs

            known = list(model_knobs(self.registry))
            for knob in self.knobs:
                if knob not in known:
                    raise ValueError(f"model '{self.registry}' has no knob '{knob}'.{did_you_mean(knob, known)} "
                                     f"Valid knobs: {', '.join(known)}")
        return self

    @property
    def kind(self) -> str:
        """``"registry"``, ``"run"`` or ``"factory"``."""
        return next(k for k in ("registry", "run", "factory") if getattr(self, k) is not None)

    def references(self) -> list[str]:
        """The code references this source would import (its factory, if any)."""
        return [self.factory] if self.factory is not None else []

    def describe(self) -> str:
        """A short human label, e.g. ``cnn(channels=[8, 16])``."""
        if self.run is not None:
            return f"run {self.run}" + (f" (built by {self.factory})" if self.factory else "")
        knobs = ", ".join(f"{k}={v}" for k, v in self.knobs.items())
        return f"{self.registry or self.factory}({knobs})"


class EvaluationConfig(Config):
    """How every stage is measured against the original: on which split, latency settings.

    ``final_repeats`` is used for the closing original-vs-final measurement behind the report's
    summary (more repeats, since that figure is the headline). ``latency: false`` skips timing
    (quality, sizes and MACs are still measured).
    """

    split: str = Field("test", pattern="^(test|val)$")
    latency: bool = True
    batch_sizes: tuple[int, ...] = (1, 256)
    warmup: int = Field(5, ge=0)
    repeats: int = Field(20, ge=1)
    final_repeats: int = Field(50, ge=1)
    threads: int | None = Field(None, ge=1)

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if not sizes or any(b < 1 for b in sizes):
            raise ValueError(f"batch sizes must be positive, got {list(sizes)}")
        return sizes


class Targets(Config):
    """What the final deployed artifact must reach against the original (checked in the report).

    ``size_ratio``: at least this many times smaller file; ``speedup``: at least this many times
    faster per batch size; ``accuracy_drop``: at most this many points of accuracy lost.
    """

    size_ratio: float | None = Field(None, gt=0)
    speedup: dict[int, float] = Field(default_factory=dict)
    accuracy_drop: float | None = Field(None, ge=0)


class StageConfig(Config):
    """Base of every stage's config: ``type`` (the registered stage) and an optional ``name``
    (default: the type), which names the stage's folder and its overrides."""

    type: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str | None) -> str | None:
        if name is not None and not NAME_PATTERN.match(name):
            raise ValueError(f"stage name '{name}' may hold only letters, digits, '_' and '-' (it names a folder)")
        return name

    @property
    def label(self) -> str:
        return self.name or self.type

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        return {"type": data.pop("type"), "name": data.pop("name"), **data}


class Recipe(Config):
    """A whole compression pipeline. Load one from YAML with :func:`slimkit.recipe.load_recipe`.

    ``original`` names the stage whose output every later stage is compared with (``source``
    for the model as loaded). By default it is the last of the leading ``train`` stages, so a
    recipe that trains a teacher first compares everything with the trained teacher.
    """

    name: str = "recipe"
    description: str = ""
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelSource
    original: str | None = None
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    targets: Targets = Field(default_factory=Targets)
    stages: list[SerializeAsAny[StageConfig]] = Field(min_length=1)

    @field_validator("stages", mode="before")
    @classmethod
    def _typed_stages(cls, stages: Any) -> Any:
        from slimkit.recipe.stages import build_stage

        if isinstance(stages, (list, tuple)):
            return [build_stage(s) if isinstance(s, dict) else s for s in stages]
        return stages

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        problems = recipe_problems(self)
        if problems:
            raise ValueError("; ".join(f"{path}: {message}" for path, message in problems))
        return self

    def labels(self) -> list[str]:
        """Each stage's name (or type), in order."""
        return [s.label for s in self.stages]

    def folder(self, number: int) -> str:
        """The folder of stage ``number`` (1-based), e.g. ``02-distill``; ``00-source`` for 0."""
        return "00-source" if number == 0 else f"{number:02d}-{self.stages[number - 1].label}"

    def original_number(self) -> int:
        """The 1-based number of the stage whose output is the original (0: the source)."""
        if self.original == SOURCE:
            return 0
        if self.original is not None:
            return self.labels().index(self.original) + 1
        number = 0
        for stage in self.stages:
            if stage.type != "train":
                break
            number += 1
        return number

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["stages"] = [s.to_dict() for s in self.stages]
        return data


def recipe_problems(recipe: Recipe) -> list[tuple[str, str]]:
    """Cross-field problems as ``(field path, message)``; stage paths are 1-based (``stages.2``)."""
    problems: list[tuple[str, str]] = []
    labels = recipe.labels()
    reserved = set(Recipe.model_fields)
    for number, label in enumerate(labels, 1):
        if label in reserved:
            problems.append((f"stages.{number}.name", f"'{label}' is a recipe field; name the stage differently"))
    if recipe.original not in (None, SOURCE):
        if recipe.original not in labels:
            hint = did_you_mean(recipe.original, labels)
            problems.append(("original", f"no stage named '{recipe.original}'.{hint} Use a stage name or '{SOURCE}'"))
        elif labels.count(recipe.original) > 1:
            problems.append(("original", f"several stages are named '{recipe.original}'; give them distinct names"))
    if recipe.model.registry is not None and (not recipe.stages or recipe.stages[0].type != "train"):
        message = (f"model.registry builds an untrained {recipe.model.registry}; "
                   "start with a 'train' stage, or load a trained model with model.run")
        problems.append(("stages.1.type", message))
    for size in recipe.targets.speedup:
        if size not in recipe.evaluation.batch_sizes:
            measured = list(recipe.evaluation.batch_sizes)
            problems.append((f"targets.speedup.{size}", f"batch size {size} is not measured; evaluation.batch_sizes is {measured}"))
    return problems
