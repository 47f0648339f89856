"""``share``: k-means weight sharing per layer (a ShareConfig), then fine-tuning the centroids."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.sharing import ShareConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class ShareStage(StageConfig, ShareConfig):
    """Every ShareConfig field (bits, bits_by_layer, init, include, ...) plus ``finetune``."""

    type: Literal["share"] = "share"
    finetune: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(lr=1e-4))


@stage("share", ShareStage, doc="share weights by k-means (Deep Compression), then fine-tune the centroids",
       example={"bits": 4, "finetune": {"epochs": 1}})
def run_share(ctx: StageContext, config: ShareStage) -> StageResult:
    from slimkit.sharing import share

    model = share(ctx.model, technique(config, ShareConfig))
    history = ctx.finetune(model, config.finetune)
    from slimkit.export import report_of

    report = report_of(model, "share")
    bits = {row["layer"]: {"bits": max(1, math.ceil(math.log2(row["k"])))} for row in report["layers"]}
    return StageResult(model, history=history, info=report, layers=bits)
