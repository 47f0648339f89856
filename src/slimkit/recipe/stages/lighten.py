"""``lighten``: replace standard convs by depthwise-separable blocks, then recover by distillation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.transform import LightenConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class LightenStage(StageConfig, LightenConfig):
    """Every LightenConfig field, and ``finetune``: the recovery (KD from the stage's input by
    default). ``epochs`` and ``lr`` at the top level are read as ``finetune.epochs`` and
    ``finetune.lr``, as recipes wrote them before."""

    type: Literal["lighten"] = "lighten"
    finetune: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(lr=1e-3, distill_from="input"))

    @model_validator(mode="before")
    @classmethod
    def _recovery_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("epochs" in data or "lr" in data):
            data = dict(data)
            finetune = dict(data.get("finetune") or {"lr": 1e-3, "distill_from": "input"})
            finetune.update({k: data.pop(k) for k in ("epochs", "lr") if k in data})
            data["finetune"] = finetune
        return data


@stage("lighten", LightenStage, doc="convert convs to depthwise-separable blocks, then recover",
       example={"finetune": {"epochs": 1}, "skip_single_channel": True})
def run_lighten(ctx: StageContext, config: LightenStage) -> StageResult:
    from slimkit.export import report_of
    from slimkit.transform import lighten

    model = lighten(ctx.model, technique(config, LightenConfig), ctx.loaders().train)
    history = ctx.finetune(model, config.finetune)
    return StageResult(model, history=history, info=report_of(model, "lighten"))
