"""``lighten``: replace standard convs by depthwise-separable blocks, then recover by distillation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from slimkit.recipe.schema import StageConfig
from slimkit.recipe.stages.base import FinetuneConfig, StageResult, stage, technique
from slimkit.transform import LightenConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class LightenStage(StageConfig, LightenConfig):
    """Every LightenConfig field; ``epochs``/``lr`` drive the recovery (KD from the stage's input)."""

    type: Literal["lighten"] = "lighten"


@stage("lighten", LightenStage, doc="convert convs to depthwise-separable blocks, then recover",
       example={"epochs": 1, "skip_single_channel": True})
def run_lighten(ctx: StageContext, config: LightenStage) -> StageResult:
    from slimkit.transform import lighten

    # lighten() only converts and calibrates here; recovery goes through the resumable finetune.
    model = lighten(ctx.model, technique(config, LightenConfig, epochs=0), train_loader=ctx.loaders().train)
    history = ctx.finetune(model, FinetuneConfig(epochs=config.epochs, lr=config.lr, distill_from="input"))
    return StageResult(model, history=history, info=model.lighten_report)
