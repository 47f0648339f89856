"""``evaluate``: robustness of the current deployed model and the original (noise and shifts).

Quality, size and latency are measured after *every* stage anyway; this stage adds robustness.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, stage

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class EvaluateStage(StageConfig):
    """``noise``: Gaussian noise levels; ``shift``: pixel shifts (``[]`` skips either)."""

    type: Literal["evaluate"] = "evaluate"
    noise: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3])
    shift: list[int] = Field(default_factory=lambda: [2])


@stage("evaluate", EvaluateStage, doc="measure robustness (noise, shifts) of the deployed model and the original",
       example={"noise": [0.1], "shift": []})
def run_evaluate(ctx: StageContext, config: EvaluateStage) -> StageResult:
    from slimkit.evaluate import robustness
    from slimkit.recipe.models import deployed_module

    loader = getattr(ctx.loaders(), ctx.recipe.evaluation.split)
    target = deployed_module(ctx.artifact, ctx.model)
    info = {"robustness": {"model": robustness(target, loader, noise=config.noise, shift=config.shift)}}
    if ctx.original is not None and ctx.data.config == ctx.recipe.data and ctx.data.resize is None:
        info["robustness"]["original"] = robustness(ctx.original, loader, noise=config.noise, shift=config.shift)
    return StageResult(ctx.model, info=info, artifact=ctx.artifact)
