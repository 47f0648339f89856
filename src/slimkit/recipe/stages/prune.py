"""``prune``: structured (channels removed physically), unstructured (weights zeroed) or attention
(whole heads, feed-forward neurons and layers of a transformer) pruning, then a recovery
fine-tune. ``sensitivity: true`` chooses per-layer ratios by sensitivity analysis."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from slimkit.distillation.recovery import RecoveryConfig
from slimkit.pruning import AttentionPruning, StructuredPruning, UnstructuredPruning
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, one_of, stage

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext

METHODS = ("structured", "unstructured", "attention")


class PruneStage(StageConfig):
    """Exactly one of ``structured`` / ``unstructured`` / ``attention`` (the technique's own config), ``finetune``."""

    type: Literal["prune"] = "prune"
    structured: StructuredPruning | None = None
    unstructured: UnstructuredPruning | None = None
    attention: AttentionPruning | None = None
    sensitivity: bool = False
    sensitivity_batches: int = Field(20, ge=1)
    #: with ``sensitivity``: also keep at most this share of the original's latency at
    #: ``structured.latency_batch_size``, predicted from timed single-layer cuts
    sensitivity_latency: float | None = Field(None, gt=0, lt=1)
    finetune: RecoveryConfig = Field(default_factory=RecoveryConfig)

    @model_validator(mode="after")
    def _one_method(self) -> PruneStage:
        one_of(self, METHODS)
        if self.sensitivity and (self.structured is None or self.structured.target not in ("target_macs", "target_params")):
            raise ValueError("sensitivity: true chooses per-layer ratios for structured.target_macs or target_params")
        if self.sensitivity_latency is not None and not self.sensitivity:
            raise ValueError("sensitivity_latency needs sensitivity: true")
        return self


def _by_sensitivity(ctx: StageContext, model: Any, config: StructuredPruning, batches: int,
                    latency: float | None) -> tuple[StructuredPruning, dict]:
    from slimkit.pruning import choose_ratios, sensitivity

    loaders = ctx.loaders()
    result = sensitivity(model, loaders.val, criterion=config.criterion, keep=config.exclude, round_to=config.round_to,
                         loader=loaders.train, max_batches=batches,
                         latency_batch_size=None if latency is None else config.latency_batch_size,
                         threads=config.threads)
    ratios = choose_ratios(result, target_macs=config.target_macs, target_params=config.target_params,
                           target_latency=latency)
    ctx.log(f"sensitivity chose ratios {ratios}")
    chosen = config.replace(ratios=ratios, target_macs=None, target_params=None, allocation="uniform")
    return chosen, result.to_dict()  # type: ignore[return-value]


@stage("prune", PruneStage, doc="prune channels (structured) or weights (unstructured), then recover",
       example={"structured": {"ratio": 0.25}, "finetune": {"epochs": 1}})
def run_prune(ctx: StageContext, config: PruneStage) -> StageResult:
    from slimkit.pruning import make_permanent, prune, sparsity

    method, pruning = one_of(config, METHODS)
    model, info = ctx.model, {"method": method}
    if config.sensitivity:
        pruning, info["sensitivity"] = _by_sensitivity(ctx, model, pruning, config.sensitivity_batches,
                                                            config.sensitivity_latency)
    info["config"] = pruning.to_dict()
    prune(model, pruning, ctx.loaders().train, example_inputs=ctx.example_input())
    history = ctx.finetune(model, config.finetune)
    artifact = None
    if method == "unstructured":
        from slimkit.pruning import save_sparse

        info["sparsity"] = sparsity(model)
        make_permanent(model)  # plain zeroed weights: what is saved, measured and exported
        artifact = save_sparse(model, ctx.folder / "sparse")  # the zeros cost nothing here: its bytes are the size
    elif getattr(model, "slimkit_history", None):
        record = model.slimkit_history[-1]
        info["record"] = {k: record[k] for k in ("macs", "params") if k in record}
    return StageResult(model, history=history, info=info, artifact=artifact)
