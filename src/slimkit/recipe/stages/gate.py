"""``gate``: dynamic channel gating (Feature Boosting and Suppression) on the current model,
fine-tuned by distillation; suppressed channels are skipped at inference. ``info`` holds the
gated layers and the real latency and MACs per sample against the ungated model, measured on
real samples of the evaluation split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from slimkit.dynamic import ChannelGating
from slimkit.recipe.schema import StageConfig
from slimkit.recipe.stages.base import StageResult, stage, technique

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext


class GateStage(StageConfig, ChannelGating):
    """Every ChannelGating field (include, exclude, density, sparsity_weight, recover) plus the
    real samples timed at batch 1 (``latency_samples``)."""

    type: Literal["gate"] = "gate"
    latency_samples: int = Field(300, ge=0)


@stage("gate", GateStage, doc="gate channels per input (FBS): skipped channels save real time",
       example={"density": 0.5, "recover": {"epochs": 1}, "latency_samples": 10})
def run_gate(ctx: StageContext, config: GateStage) -> StageResult:
    from slimkit.dynamic import make_dynamic, per_sample_latency, samples_of
    from slimkit.evaluate import count_macs
    from slimkit.export.serialize import report_of

    loaders = ctx.loaders()
    gating = technique(config, ChannelGating)
    teacher = ctx.teacher(gating.recover.distill_from)
    model = make_dynamic(ctx.model, gating, loaders.train, val_loader=loaders.val, teacher=teacher,
                         out_dir=ctx.folder / "finetune")
    info = dict(report_of(model, "make_dynamic"))
    if config.latency_samples:
        evaluation = ctx.recipe.evaluation
        inputs = samples_of(getattr(loaders, evaluation.split), config.latency_samples)
        ungated, gated = ctx.input.eval(), model.eval()
        info["latency_batch1"] = per_sample_latency({"ungated": ungated, "gated": gated}, inputs,
                                                    threads=evaluation.threads or 1)
        info["latency_batch1"]["speedup_mean"] = (info["latency_batch1"]["ungated"]["mean_ms"]
                                                  / info["latency_batch1"]["gated"]["mean_ms"])
        few = inputs[:32]
        info["macs_per_sample"] = {"ungated": count_macs(ungated, few[0]),
                                   "gated_mean": sum(count_macs(gated, x) for x in few) / len(few)}
    return StageResult(model, info=info)
