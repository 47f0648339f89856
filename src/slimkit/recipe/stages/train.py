"""``train``: train the current model on the recipe's data (a TrainConfig plus type/name)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.train import TrainConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class TrainStage(StageConfig, TrainConfig):
    """Every TrainConfig field (epochs, lr, schedule, ...). The recipe seed is added to ``seed``."""

    type: Literal["train"] = "train"


@stage("train", TrainStage, doc="train the current model (checkpoints each epoch; resumable)", example={"epochs": 1})
def run_train(ctx: StageContext, config: TrainStage) -> StageResult:
    result = ctx.fit(ctx.model, technique(config, TrainConfig))
    return StageResult(ctx.model, history=result.history,
                       info={"best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc})
