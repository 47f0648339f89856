"""``quantize``: int8 (static, dynamic, QAT) or low-bit/mixed weights, through ``slimkit.quantization``.

Give exactly one scheme field; ``{type: quantize}`` alone means ``static_int8`` with defaults
(int8 ONNX QDQ, run by the runtime measured fastest here: ONNX Runtime or OpenVINO, per batch
size). The runtime is chosen at the recipe's ``evaluation`` batch sizes and threads (what the
report measures and the targets judge) unless the scheme sets its own ``batch_sizes`` or
``threads``. Calibration (and QAT training) use the training split. The choice and its timings
are in the stage's info (``runtime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator

from slimkit.export.serialize import report_of
from slimkit.quantization import QAT, DynamicInt8, LowBit, MixedPrecision, StaticInt8
from slimkit.recipe.fields import StageConfig
from slimkit.recipe.stages.base import StageResult, one_of, stage

if TYPE_CHECKING:
    from slimkit.recipe.context import StageContext

SCHEMES = ("static_int8", "dynamic_int8", "qat", "lowbit", "mixed")
#: Runtimes ``backend: auto`` may measure whose models cannot be saved without pickle.
UNSAVEABLE = ("fx", "x86-inductor")


class QuantizeStage(StageConfig):
    """One of ``static_int8``, ``dynamic_int8``, ``qat``, ``lowbit``, ``mixed`` (each the scheme's config)."""

    type: Literal["quantize"] = "quantize"
    static_int8: StaticInt8 | None = None
    dynamic_int8: DynamicInt8 | None = None
    qat: QAT | None = None
    lowbit: LowBit | None = None
    mixed: MixedPrecision | None = None

    @model_validator(mode="after")
    def _one_scheme(self) -> QuantizeStage:
        _, scheme = one_of(self, SCHEMES, default=StaticInt8())
        if getattr(scheme, "backend", "onnxruntime") == "x86":
            raise ValueError("a recipe saves every stage so it can resume, and x86 int8 graphs cannot be saved: "
                             "use backend: auto (the default), onnxruntime or openvino")
        unsaved = [r for r in getattr(scheme, "runtimes", []) if r in UNSAVEABLE]
        if getattr(scheme, "backend", "") == "auto" and unsaved:
            raise ValueError(f"runtimes {unsaved} make models that cannot be saved, and a recipe saves every "
                             f"stage so it can resume: choose among the others")
        return self


def _bits(model: Any, scheme: Any) -> dict[str, dict[str, Any]]:
    """Bits per quantized layer, for the report's per-layer bars."""
    for change in reversed(getattr(model, "slimkit_history", [])):
        if change.get("kind") == "lowbit":
            return {name: {"bits": plan["bits"]} for name, plan in change["layers"].items()}
    bits = getattr(scheme, "weight_bits", getattr(scheme, "bits", 8))  # LowBit on onnxruntime: no lowbit change
    return {name: {"bits": bits} for name in report_of(model, "quantize").get("quantized_layers", [])}


def timed_as_evaluated(scheme: Any, evaluation: Any) -> Any:
    """``scheme`` with ``backend: auto`` timing its candidates at ``evaluation``'s batch sizes and
    threads, where the scheme leaves them unset: a runtime fastest at batch 256 on two threads
    is no answer for a recipe judged at batch 32 on one."""
    if getattr(scheme, "backend", None) != "auto":
        return scheme
    wanted = {"batch_sizes": list(evaluation.batch_sizes), "threads": evaluation.threads}
    fields = {k: v for k, v in wanted.items() if k not in scheme.model_fields_set and v is not None}
    return scheme.replace(**fields) if fields else scheme


@stage("quantize", QuantizeStage, doc="quantize (int8 on the fastest measured runtime by default; QAT, low-bit, mixed)",
       example={"static_int8": {"calibration_batches": 1}})
def run_quantize(ctx: StageContext, config: QuantizeStage) -> StageResult:
    from slimkit.quantization import quantize

    name, scheme = one_of(config, SCHEMES, default=StaticInt8())
    scheme = timed_as_evaluated(scheme, ctx.recipe.evaluation)
    quantized = quantize(ctx.model, scheme, ctx.loaders().train, example_inputs=ctx.example_input())
    info = {**report_of(quantized, "quantize"), "method": name}
    return StageResult(quantized, info=info, layers=_bits(quantized, scheme))
