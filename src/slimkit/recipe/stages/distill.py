"""``distill``: train a new student (``student``: a model source) to imitate the current model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from slimkit.distillation import DistillConfig
from slimkit.recipe.schema import ModelSource, StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class DistillStage(StageConfig, DistillConfig):
    """Every DistillConfig field (losses, train, cache_teacher, ...) plus the ``student`` to build."""

    type: Literal["distill"] = "distill"
    student: ModelSource


@stage("distill", DistillStage, doc="distill the current model into a new, smaller student",
       example={"student": {"registry": "mlp", "knobs": {"hidden": [8]}}, "train": {"epochs": 1}})
def run_distill(ctx: StageContext, config: DistillStage) -> StageResult:
    student = ctx.build(config.student)
    result = ctx.distill(student, ctx.model, technique(config, DistillConfig))
    return StageResult(student, history=result.history, source=config.student,
                       info={"student": config.student.describe(), "teacher_cache": result.cache,
                             "best_val_acc": result.best_val_acc})
