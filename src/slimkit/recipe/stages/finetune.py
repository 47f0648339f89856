"""``finetune``: a recovery fine-tune, distilling from the original (or the input) by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class FinetuneStage(StageConfig, RecoveryConfig):
    """Every RecoveryConfig field: epochs, lr, weight_decay, schedule, distill_from, temperature, kd_weight."""

    type: Literal["finetune"] = "finetune"


@stage("finetune", FinetuneStage, doc="fine-tune the current model (KD from the original by default)",
       example={"epochs": 1})
def run_finetune(ctx: StageContext, config: FinetuneStage) -> StageResult:
    return StageResult(ctx.model, history=ctx.finetune(ctx.model, config))
