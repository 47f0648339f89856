"""``distill``: train a new student (``student``: a model source) to imitate the current model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.distillation import DistillConfig
from slimkit.recipe.fields import ModelSource, StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique

if TYPE_CHECKING:
    from torch import nn

    from slimkit.recipe.context import StageContext


class DistillStage(StageConfig, DistillConfig):
    """Every DistillConfig field (losses, train, cache_teacher, ...) plus the ``student`` to build,
    and ``teachers``: more teachers beside the current model (their logits combined by
    ``teacher_weighting``)."""

    type: Literal["distill"] = "distill"
    student: ModelSource
    teachers: list[ModelSource] = Field(default_factory=list)


def _seeing(student: nn.Module, view: dict) -> nn.Module:
    """The student as it is used: always on its input view (saved and reloaded as such)."""
    from slimkit.distillation.views import Viewed, build_view
    from slimkit.export.serialize import record_change

    deployed = Viewed(student, build_view(view))
    for attribute in ("slimkit_spec", "slimkit_history"):
        if hasattr(student, attribute):
            setattr(deployed, attribute, getattr(student, attribute))
    record_change(deployed, "input_view", view=view)
    return deployed


def _for_view(source: ModelSource, view: dict, ctx: StageContext) -> ModelSource:
    """A zoo student is built for the input it sees: a downsampling view shrinks its input size."""
    from slimkit.distillation.views import build_view

    if source.registry is None or "input_size" in source.knobs or view.get("name", "identity") == "identity":
        return source
    size = build_view(view).output_size(ctx.loaders().splits.input_shape[-1])
    return source.replace(knobs={**source.knobs, "input_size": size})  # type: ignore[return-value]


@stage("distill", DistillStage, doc="distill the current model into a new, smaller student",
       example={"student": {"registry": "mlp", "knobs": {"hidden": [8]}}, "train": {"epochs": 1}})
def run_distill(ctx: StageContext, config: DistillStage) -> StageResult:
    student = ctx.build(_for_view(config.student, config.student_view, ctx))
    teachers = [ctx.model, *(ctx.build(source).eval().requires_grad_(False) for source in config.teachers)]
    result = ctx.distill(student, teachers if config.teachers else ctx.model, technique(config, DistillConfig))
    if config.student_view.get("name", "identity") != "identity":
        student = _seeing(student, config.student_view)
    return StageResult(student, history=result.history, source=config.student,
                       info={"student": config.student.describe(), "teacher_cache": result.cache,
                             "best_val_acc": result.best_val_acc})
