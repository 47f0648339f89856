"""``factorize``: low-rank factorization (one of ``svd``, ``tucker``, ``cp``), then recovery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.factorization import CP, SVD, Tucker
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, one_of, stage

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext

METHODS = ("svd", "tucker", "cp")


class FactorizeStage(StageConfig):
    """Exactly one of ``svd`` / ``tucker`` / ``cp`` (the method's config), and ``finetune``."""

    type: Literal["factorize"] = "factorize"
    svd: SVD | None = None
    tucker: Tucker | None = None
    cp: CP | None = None
    finetune: RecoveryConfig = Field(default_factory=RecoveryConfig)

    @model_validator(mode="after")
    def _one_method(self) -> FactorizeStage:
        one_of(self, METHODS)
        return self


@stage("factorize", FactorizeStage, doc="replace layers by low-rank factors (SVD, Tucker-2, CP), then recover",
       example={"svd": {"energy": 0.9}, "finetune": {"epochs": 1}})
def run_factorize(ctx: StageContext, config: FactorizeStage) -> StageResult:
    from slimkit.factorization import factorize

    method, options = one_of(config, METHODS)
    from slimkit.export import report_of

    model = factorize(ctx.model, options, example_inputs=ctx.example_input())
    report = report_of(model, "factorize")
    history = ctx.finetune(model, config.finetune)
    ranks = {layer["layer"]: {"rank": list(layer["ranks"])} for layer in report["layers"]}
    return StageResult(model, history=history, info={"method": method, **report}, layers=ranks)
