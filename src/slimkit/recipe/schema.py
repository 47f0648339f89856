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

from typing import Any

from pydantic import Field, SerializeAsAny, field_validator, model_validator

from slimkit.config import Config, Seed
from slimkit.data import DataConfig
from slimkit.recipe.fields import NAME_PATTERN, EvaluationConfig, ModelSource, StageConfig, Targets
from slimkit.registry import did_you_mean

__all__ = ["NAME_PATTERN", "SOURCE", "EvaluationConfig", "ModelSource", "Recipe", "StageConfig", "Targets",
           "recipe_problems"]

#: ``original: source`` compares every stage with the model as loaded, before any stage.
SOURCE = "source"


class Recipe(Config):
    """A whole compression pipeline. Load one from YAML with :func:`slimkit.recipe.load_recipe`.

    ``original`` names the stage whose output every later stage is compared with (``source``
    for the model as loaded). By default it is the last of the leading ``train`` stages, so a
    recipe that trains a teacher first compares everything with the trained teacher.
    """

    name: str = "recipe"
    description: str = ""
    seed: Seed = 0
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

    def references(self) -> list[str]:
        """Every code reference the recipe would import (model sources' factories), in order."""
        found: list[str] = list(self.model.references())
        for stage in self.stages:
            for name in type(stage).model_fields:
                value = getattr(stage, name)
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, ModelSource):
                        found += item.references()
        return list(dict.fromkeys(found))

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
