"""``fuse``: fold BatchNorm into the preceding conv/linear layers (a FuseConfig)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique
from slimkit.transform import FuseConfig

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class FuseStage(StageConfig, FuseConfig):
    """Every FuseConfig field: include, exclude, relu."""

    type: Literal["fuse"] = "fuse"


@stage("fuse", FuseStage, doc="fold BatchNorm into conv/linear layers (same outputs, fewer ops)")
def run_fuse(ctx: StageContext, config: FuseStage) -> StageResult:
    from slimkit.export import report_of
    from slimkit.transform import fuse

    model = fuse(ctx.model.eval(), technique(config, FuseConfig))
    return StageResult(model, info=report_of(model, "fuse"))
