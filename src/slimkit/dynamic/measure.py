"""Measure a dynamic model on real data: per-exit figures, mean MACs, and latency.

A dynamic model's cost depends on its input, so it is timed on real samples, never on random
tensors: each sample is run through the models being compared one after another (the order
rotating per sample, so drift in the machine's load falls on all alike), after a warm-up, with
a fixed thread count. Mean and p90 over the samples are reported, at batch 1 and per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from slimkit.dynamic.calibrate import collect
from slimkit.dynamic.early_exit import EarlyExitNet
from slimkit.dynamic.timing import per_sample_latency, samples_of
from slimkit.evaluate.predict import eval_mode, model_device
from slimkit.modelio import batch_size, call, split, take, to_device

__all__ = ["exit_report", "per_sample_latency", "samples_of"]


def exit_report(net: EarlyExitNet, loader: Iterable[Any], *, latency_samples: int = 500, latency_batch: int = 256,
                latency_batches: int = 5, warmup: int = 20, threads: int | None = 1) -> dict[str, Any]:
    """Exit rates, accuracy per exit, accuracy and mean MACs against the network without exits,
    and mean/p90 latency of both at batch 1 and at ``latency_batch``, on labelled ``loader``.

    The exits and accuracy come from running ``net`` as deployed (samples leaving the batch).
    """
    device = model_device(net)
    table = collect(net, loader, timed=False)
    exits, right = [], []
    with eval_mode(net), torch.no_grad():
        for raw in loader:
            batch = split(to_device(raw, device))
            logits, taken = call(net.run, batch.inputs)
            exits.append(taken.cpu())
            right.append((logits.argmax(1) == batch.targets).cpu())
    taken, correct = torch.cat(exits).numpy(), torch.cat(right).numpy()
    k = len(net.heads)
    enabled = net.enabled()
    thresholds = net.thresholds.tolist()
    rows = []
    for i, name in enumerate([*net.layers, "final"]):
        mask = taken == i
        rows.append({"exit": name, "rate": float(mask.mean()), "count": int(mask.sum()),
                     "accuracy": float(correct[mask].mean()) if mask.any() else None,
                     "head_accuracy": float(table.correct[:, i].mean()),
                     "threshold": None if i == k or not enabled[i] else float(thresholds[i]),
                     "enabled": True if i == k else enabled[i]})
    macs = table.exit_macs(enabled)[taken]
    static_acc = float(table.correct[:, -1].mean())
    report: dict[str, Any] = {
        "criterion": net.criterion, "exits": rows, "samples": len(taken),
        "accuracy": float(correct.mean()), "static_accuracy": static_acc,
        "drop_points": 100 * (static_acc - float(correct.mean())),
        "mean_macs": float(macs.mean()), "static_macs": table.static_macs,
        "macs_share": float(macs.mean()) / table.static_macs,
    }
    if latency_samples:
        report["latency"] = latency_against_static(net, loader, samples=latency_samples, batch=latency_batch,
                                                   batches=latency_batches, warmup=warmup, threads=threads)
    return report


def latency_against_static(net: nn.Module, loader: Iterable[Any], *, samples: int = 500, batch: int = 256,
                           batches: int = 5, warmup: int = 20, threads: int | None = 1) -> dict[str, Any]:
    """Mean and p90 latency of ``net`` (dynamic) and ``net.model`` (static) on real samples, at
    batch 1 and at ``batch``, with the ratios static / dynamic of the means."""
    device = model_device(net)
    static = net.model  # type: ignore[union-attr]
    out: dict[str, Any] = {"threads": threads}
    with eval_mode(net):
        for label, size, count in (("batch1", 1, samples), (f"batch{batch}", batch, batches)):
            if not count:
                continue
            inputs = [to_device(x, device) for x in samples_of(loader, count, size=size)]
            if not inputs or batch_size(inputs[0]) != size:
                continue
            timed = per_sample_latency({"static": static, "dynamic": net}, inputs, warmup=min(warmup, len(inputs)),
                                       threads=threads)
            timed["speedup_mean"] = timed["static"]["mean_ms"] / timed["dynamic"]["mean_ms"]
            timed["batch_size"] = size
            out[label] = timed
    return out


def first_sample(loader: Iterable[Any]) -> Any:
    """One sample's model inputs from ``loader``."""
    return take(split(next(iter(loader))).inputs, 1)
