"""``early_exit``: exit heads after chosen layers, trained by self-distillation, thresholds
calibrated on the validation split to a budget; the stage's model is the
:class:`~slimkit.dynamic.EarlyExitNet` (saved and reloaded through its recorded change).

The stage's ``info`` holds what the report shows for a dynamic model, measured on the
evaluation split: exit rates and accuracy per exit, accuracy and mean MACs against the same
network without exits, and mean/p90 latency of both on real samples at batch 1 and in batches
(the network without exits is the reference: ``latency.batch1.speedup_mean``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.dynamic import EarlyExit
from slimkit.recipe.schema import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class EarlyExitStage(StageConfig, EarlyExit):
    """Every EarlyExit field (exits, head, train, budget, criterion...) plus how many real
    samples are timed at batch 1 (``latency_samples``) and how many batches of
    ``latency_batch`` samples (``latency_batches``) for the report."""

    type: Literal["early_exit"] = "early_exit"
    latency_samples: int = Field(500, ge=0)
    latency_batch: int = Field(256, ge=2)
    latency_batches: int = Field(5, ge=0)


@stage("early_exit", EarlyExitStage, doc="add early exits (self-distilled heads, thresholds calibrated to a budget)",
       example={"exits": ["features.0"], "train": {"epochs": 1}, "latency_samples": 10, "latency_batches": 1,
                "latency_batch": 8})
def run_early_exit(ctx: StageContext, config: EarlyExitStage) -> StageResult:
    from slimkit.dynamic import exit_report, make_dynamic
    from slimkit.export.serialize import report_of

    loaders = ctx.loaders()
    exits = technique(config, EarlyExit)
    exits = exits.replace(train=ctx.train_config(exits.train))
    net = make_dynamic(ctx.model, exits, loaders.train, val_loader=loaders.val, out_dir=ctx.folder / "train")
    evaluation = ctx.recipe.evaluation
    measured = exit_report(net, getattr(loaders, evaluation.split), latency_samples=config.latency_samples,
                           latency_batch=config.latency_batch, latency_batches=config.latency_batches,
                           threads=evaluation.threads or 1)
    done = report_of(net, "make_dynamic")
    ctx.log(f"early exit: exits {done['layers']}, {evaluation.split} accuracy {measured['accuracy']:.4f} "
            f"(without exits {measured['static_accuracy']:.4f}), mean MACs {measured['macs_share']:.2%}")
    return StageResult(net, info={"technique": "early_exit", "layers": done["layers"], "split": evaluation.split,
                                  "calibration": done["calibration"], **measured})
