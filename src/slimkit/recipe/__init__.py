"""Recipes: a YAML pipeline of typed stages, run resumably, measured against the original.

>>> from slimkit.recipe import STAGES, parse_recipe
>>> recipe = parse_recipe("model: {registry: mlp}\\nstages: [{type: train, epochs: 1}]")
>>> recipe.stages[0].type, "prune" in STAGES
('train', True)
"""

from slimkit.recipe.context import DataState, StageContext
from slimkit.recipe.loader import load_recipe, parse_recipe, validate_recipe
from slimkit.recipe.overrides import apply_overrides, smoke_overrides
from slimkit.recipe.runner import RunResult, resolve, run_recipe
from slimkit.recipe.schema import (
    EvaluationConfig,
    ModelSource,
    Recipe,
    StageConfig,
    Targets,
)
from slimkit.recipe.stages import (
    STAGES,
    StageResult,
    build_stage,
    stage,
)

__all__ = [
    "STAGES",
    "DataState",
    "EvaluationConfig",
    "ModelSource",
    "Recipe",
    "RunResult",
    "StageConfig",
    "StageContext",
    "StageResult",
    "Targets",
    "apply_overrides",
    "build_stage",
    "load_recipe",
    "parse_recipe",
    "resolve",
    "run_recipe",
    "smoke_overrides",
    "stage",
    "validate_recipe",
]
