"""Measure a stage's model against the original: quality, size, MACs, latency, per-layer facts.

Quality comes from one pass over the evaluation split; bytes are the real files on disk; latency
alternates the original and the model in one process (:func:`slimkit.evaluate.measure_latency`).
Runtime artifacts (ONNX Runtime) have no torch parameters or countable MACs, so theirs are
carried over from the float model they were made from (marked ``carried``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from slimkit.recipe.schema import EvaluationConfig, Targets

QUALITY_KEYS = ("accuracy", "f1", "roc_auc", "ece", "per_class_accuracy", "confusion", "num_samples")
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)


def predict_quality(model: nn.Module, loader: Any) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Logits, targets and the quality figures the report shows."""
    from slimkit.evaluate import predict, quality

    preds = predict(model, loader)
    full = quality(preds.logits, preds.targets, topk=(1,))
    return preds.logits, preds.targets, {k: full[k] for k in QUALITY_KEYS}


def static_cost(model: nn.Module, example: Tensor, size: int, carried: dict[str, Any] | None) -> dict[str, Any]:
    """Params, nonzero params, MACs per sample and the given file ``size``."""
    from slimkit.evaluate import count_macs, count_nonzero, count_params

    params = count_params(model)
    try:
        macs = count_macs(model, example[:1])
    except Exception:  # noqa: BLE001  (a scripted or runtime module the counter cannot trace: carry the float model's)
        macs = 0
    cost = {"params": params, "nonzero_params": count_nonzero(model), "macs": macs, "bytes": size, "carried": False}
    if (params == 0 or macs == 0) and carried:
        cost.update({k: carried[k] for k in ("params", "nonzero_params", "macs") if k in carried}, carried=True)
    return cost


def latency(models: dict[str, nn.Module], example: Tensor, settings: EvaluationConfig, *, final: bool = False) -> dict:
    """Median/p90 latency per model and batch size, the models alternating call by call (none
    when ``settings.latency`` is off)."""
    from slimkit.evaluate import measure_latency

    if not settings.latency:
        return {name: {} for name in models}
    result = measure_latency(models, example, batch_sizes=settings.batch_sizes, warmup=settings.warmup,
                             repeats=settings.final_repeats if final else settings.repeats,
                             threads=settings.threads, memory=False, settle=True)
    keep = ("median_ms", "p90_ms", "throughput", "threads")
    return {name: {str(b): {k: s[k] for k in keep} for b, s in per.items()} for name, per in result.items()}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def versus(current: dict[str, Any], original: dict[str, Any] | None, *, same_data: bool) -> dict[str, Any]:
    """Deltas (points for accuracy) and ratios (how many times smaller/faster) against the original."""
    if original is None:
        return {}
    qa, qb = original["quality"], current["quality"]
    ca, cb = original["cost"], current["cost"]
    out: dict[str, Any] = {
        "size_ratio": ratio(ca["bytes"], cb["bytes"]), "params_ratio": ratio(ca["params"], cb["params"]),
        "macs_ratio": ratio(ca["macs"], cb["macs"]),
        "speedup": {b: ratio(original["latency"][b]["median_ms"], s["median_ms"])
                    for b, s in current.get("latency", {}).items() if b in original.get("latency", {})},
    }
    if same_data:
        for key in ("f1", "roc_auc", "ece"):
            a, b = qa.get(key), qb.get(key)
            out[f"{key}_delta"] = None if a is None or b is None else b - a
        # accuracies are shares of one finite test set: rounding drops the float residue that would
        # make exactly 0.5 points lost (92.76% -> 92.26%) read 0.5000000000000004 and miss a 0.5 target
        out["accuracy_delta"] = round(100 * (qb["accuracy"] - qa["accuracy"]), 9)
    return out


def layer_table(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per conv/linear layer: type, params, nonzero weights, sparsity, outputs (channels or features).

    >>> layer_table(nn.Sequential(nn.Linear(3, 2)))["0"]["params"]
    8
    """
    table = {}
    for name, module in model.named_modules():
        if not isinstance(module, _LAYERS):
            continue
        with torch.no_grad():
            weight = module.weight.detach()  # the effective tensor: masks and shared values applied
            bias = module.bias.numel() if module.bias is not None else 0
            nonzero = int(torch.count_nonzero(weight))
        table[name] = {"type": type(module).__name__, "params": weight.numel() + bias, "weights": weight.numel(),
                       "nonzero": nonzero, "sparsity": 1 - nonzero / max(weight.numel(), 1),
                       "out": getattr(module, "out_channels", getattr(module, "out_features", None)), "bits": 32}
    return table


def merge_layers(table: dict[str, dict], previous: dict[str, dict], extras: dict[str, dict]) -> dict[str, dict]:
    """The stage's layer table: its own (or the previous stage's, for a runtime artifact) plus extras."""
    merged = {k: dict(v) for k, v in (table or previous).items()}
    for name, extra in extras.items():
        merged.setdefault(name, {}).update(extra)
    return merged


def summary_text(ratios: dict[str, Any]) -> str:
    """Plain words: ``4.1x smaller, 2.3x faster at batch 256, 5.0x faster at batch 1, -0.2 points accuracy``.

    >>> summary_text({"size_ratio": 4.1, "speedup": {"1": 5.0, "256": 2.3}, "accuracy_delta": -0.2})
    '4.1x smaller, 2.3x faster at batch 256, 5.0x faster at batch 1, -0.2 points accuracy'
    """
    def times(value: float | None, more: str, less: str) -> str | None:
        if not value:
            return None
        return f"{value:.1f}x {more}" if value >= 1 else f"{1 / value:.1f}x {less}"

    parts = [times(ratios.get("size_ratio"), "smaller", "larger")]
    for batch, value in sorted(ratios.get("speedup", {}).items(), key=lambda kv: -int(kv[0])):
        text = times(value, "faster", "slower")
        parts.append(f"{text} at batch {batch}" if text else None)
    if ratios.get("accuracy_delta") is not None:
        parts.append(f"{ratios['accuracy_delta']:+.1f} points accuracy".replace("+0.0", "0.0"))
    return ", ".join(p for p in parts if p)


def check_targets(targets: Targets, ratios: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what was asked, what was measured, and whether it is met."""
    rows = []
    if targets.size_ratio is not None:
        got = ratios.get("size_ratio")
        rows.append({"target": f">= {targets.size_ratio:g}x smaller", "measured": got,
                     "met": got is not None and got >= targets.size_ratio})
    for batch, want in sorted(targets.speedup.items()):
        got = ratios.get("speedup", {}).get(str(batch))
        rows.append({"target": f">= {want:g}x faster at batch {batch}", "measured": got,
                     "met": got is not None and got >= want})
    if targets.accuracy_drop is not None:
        got = ratios.get("accuracy_delta")
        rows.append({"target": f"<= {targets.accuracy_drop:g} points accuracy lost", "measured": got,
                     "met": got is not None and -got <= targets.accuracy_drop})
    return rows
