"""The closing measurement: the original against the final deployed artifact, in one process.

Both are predicted on the same evaluation split (agreement, prediction flips, per-class deltas,
confusion matrices) and timed alternating A B A B with ``evaluation.final_repeats`` repeats.
This is the figure behind the report's one-line summary and the recipe's targets.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any

import torch

from slimkit.recipe.evaluation import (
    check_targets,
    latency,
    predict_quality,
    summary_text,
    versus,
)

if TYPE_CHECKING:
    from slimkit.recipe.pipeline import Current, Pipeline


def _versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # optional at run time: only int8/ONNX stages need it
        pass
    return versions


def final_comparison(pipeline: Pipeline, current: Current) -> dict[str, Any]:
    """``final.json``: both models' quality and cost, agreement, latency and ratios, summary, targets."""
    from slimkit.evaluate import agreement
    from slimkit.recipe.models import deployed_module

    recipe, record = pipeline.recipe, pipeline.original_record
    assert record is not None and pipeline.original is not None  # the original is always set by now
    target = deployed_module(current.artifact, current.model)
    loader = pipeline.eval_loader(current.data)
    logits_b, targets, quality_b = predict_quality(target, loader)
    same_data = record["data"] == current.data.to_dict()
    result: dict[str, Any] = {
        "names": ["original", "final"],
        "original": {"folder": record["folder"], "quality": record["quality"], "cost": record["cost"],
                     "model": record["model"]},
        "final": {"deployed": str(current.artifact.relative_to(pipeline.out)) if current.artifact else "model",
                  "quality": quality_b, "cost": current.cost, "data": current.data.to_dict()},
        "same_data": same_data,
        "class_names": pipeline.cache.get(current.data).splits.class_names,
    }
    example = next(iter(loader))[0][:2]
    if same_data:
        logits_a, _, quality_a = predict_quality(pipeline.original, loader)
        result["original"]["quality"] = quality_a
        result["agreement"] = agreement(logits_a, logits_b, targets)
    comparable = tuple(record["input_shape"]) == tuple(example.shape[1:])
    models = {"original": pipeline.original, "final": target} if comparable else {"final": target}
    lat = latency(models, example, recipe.evaluation, final=True)
    result["final"]["latency"] = lat["final"]
    result["original"]["latency"] = lat.get("original", record["latency"])
    ratios = versus({"quality": quality_b, "cost": current.cost, "latency": lat["final"]},
                    {"quality": result["original"]["quality"], "cost": record["cost"],
                     "latency": result["original"]["latency"]}, same_data=same_data)
    result["ratios"] = ratios
    result["summary"] = summary_text(ratios)
    result["targets"] = check_targets(recipe.targets, ratios)
    result["settings"] = {
        "batch_sizes": list(recipe.evaluation.batch_sizes), "repeats": recipe.evaluation.final_repeats,
        "warmup": recipe.evaluation.warmup,
        "threads": next(iter(lat["final"].values()), {}).get("threads", recipe.evaluation.threads),
        "split": recipe.evaluation.split, "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), **_versions(),
    }
    return result
