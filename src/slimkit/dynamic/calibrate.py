"""Calibrate early-exit thresholds on held-out data to a budget.

One pass over the validation loader records, for every sample, each exit's confidence and
whether each exit (and the final head) is right (:func:`collect`), with the cost of each
segment and head: MACs, and latency at batch 1 timed on this machine. Any set of thresholds
can then be scored without running the model again (:func:`simulate`): which exit each sample
takes, the accuracy, the mean MACs and the expected latency (segments run, plus the heads of
the enabled exits evaluated on the way). :func:`calibrate` searches thresholds per exit, over
quantiles of that exit's confidences plus "disabled":

- ``accuracy_drop``: the lowest mean cost (``latency`` by default, or ``macs``) whose accuracy
  is at most that many points below the final head's; ``margin`` standard errors of the
  measured drop are added first (0: the budget holds on the calibration data itself; 1: it
  also holds, with some confidence, on data not seen);
- ``target_macs``: the best accuracy whose mean MACs are at most that share of the network's.

Latency is the better cost to save: an exit head costs little in MACs but a fixed overhead in
time, which an exit that few samples take does not pay back.

The search starts from one threshold shared by every exit (a sweep) and from all exits
disabled, then improves one exit at a time until nothing changes (coordinate descent).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from slimkit.dynamic.early_exit import EarlyExitNet, confidence
from slimkit.errors import ConfigError, DataError
from slimkit.evaluate.predict import eval_mode, model_device
from slimkit.modelio import call, split, take, to_device

__all__ = ["ExitTable", "calibrate", "collect", "simulate"]


@dataclass
class ExitTable:
    """What calibration needs to know about each sample: ``scores`` (N, K) exit confidences,
    ``correct`` (N, K + 1) right or wrong at each exit and at the final head, and the MACs of
    each segment (K + 1) and head (K) for one sample."""

    scores: np.ndarray
    correct: np.ndarray
    segment_macs: list[int]
    head_macs: list[int]
    segment_ms: list[float] | None = None
    head_ms: list[float] | None = None

    @property
    def static_macs(self) -> int:
        """MACs of the network without exits."""
        return int(sum(self.segment_macs))

    def exit_macs(self, enabled: list[bool]) -> np.ndarray:
        """MACs of a sample leaving at each exit (and the final one) with these exits enabled."""
        return _cumulative(self.segment_macs, self.head_macs, enabled)

    def exit_ms(self, enabled: list[bool]) -> np.ndarray | None:
        """Batch-1 latency of a sample leaving at each exit with these exits enabled (None when
        the table holds no timings)."""
        if self.segment_ms is None or self.head_ms is None:
            return None
        return _cumulative(self.segment_ms, self.head_ms, enabled)


def _cumulative(segments: list[Any], heads: list[Any], enabled: list[bool]) -> np.ndarray:
    out, total = [], 0.0
    for k, cost in enumerate(segments):
        total += cost
        if k < len(heads):
            total += heads[k] if enabled[k] else 0
        out.append(total)
    return np.asarray(out, dtype=np.float64)


def collect(net: EarlyExitNet, loader: Iterable[Any], *, max_batches: int | None = None, timed: bool = True,
            threads: int | None = 1) -> ExitTable:
    """Run ``net`` (every exit, no sample leaving) over labelled ``loader``; see :class:`ExitTable`.
    ``timed`` also times each segment and head at batch 1 (``threads`` threads)."""
    scores, correct, example = [], [], None
    device = model_device(net)
    with eval_mode(net), torch.no_grad():
        for i, raw in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            batch = split(to_device(raw, device))
            if batch.targets is None:
                raise DataError("early-exit calibration needs labels: the loader must yield (x, y, ...)")
            logits = call(net.all_logits, batch.inputs)
            scores.append(torch.stack([confidence(z, net.criterion) for z in logits[:-1]], dim=1).cpu())
            correct.append(torch.stack([z.argmax(1) == batch.targets for z in logits], dim=1).cpu())
            if example is None:
                example = take(batch.inputs, 1)
    if example is None:
        raise DataError("early-exit calibration got an empty loader", hint="pass the validation loader")
    costs = net.costs(example)
    times = {"segments": None, "heads": None}
    if timed:
        with eval_mode(net):
            times = net.timings(example, threads=threads)
    return ExitTable(torch.cat(scores).numpy().astype(np.float64), torch.cat(correct).numpy(),
                     costs["segments"], costs["heads"], times["segments"], times["heads"])


def simulate(table: ExitTable, thresholds: list[float]) -> dict[str, Any]:
    """Exit taken per sample, accuracy, mean MACs, expected latency (``mean_ms``, when the table
    is timed) and exit rates for ``thresholds``."""
    k = table.scores.shape[1]
    enabled = [t <= 1.0 for t in thresholds]
    leave = table.scores >= np.asarray(thresholds, dtype=np.float64)[None, :]
    exits = np.where(leave.any(axis=1), leave.argmax(axis=1), k)
    right = table.correct[np.arange(len(exits)), exits]
    macs = table.exit_macs(enabled)[exits]
    ms = table.exit_ms(enabled)
    rates = np.bincount(exits, minlength=k + 1) / max(1, len(exits))
    final = table.correct[:, -1]
    return {"exits": exits, "accuracy": float(right.mean()), "mean_macs": float(macs.mean()),
            "mean_ms": None if ms is None else float(ms[exits].mean()), "rates": rates.tolist(),
            "drop_se_points": 100 * _paired_se(final, right)}


def _paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of mean(a) - mean(b) for paired right/wrong outcomes."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0


def _candidates(scores: np.ndarray, count: int) -> list[float]:
    """Thresholds worth trying for one exit: quantiles of its confidences, and disabled."""
    levels = np.quantile(scores, np.linspace(0.0, 1.0, count)) if scores.size else np.asarray([])
    return sorted({float(v) for v in levels}) + [math.inf]


def calibrate(table: ExitTable, budget: str, value: float, *, cost: str = "latency", margin: float = 0.0,
              candidates: int = 64) -> dict[str, Any]:
    """Thresholds for ``budget`` (``accuracy_drop`` in points, or ``target_macs`` as a share of
    the network's MACs); see the module docstring. Returns the thresholds and what they give on
    this table (accuracy, final-head accuracy, drop, mean MACs and share, expected latency, exit
    rates)."""
    if budget not in ("accuracy_drop", "target_macs"):
        raise ConfigError(f"early exit: unknown budget {budget!r}", hint="accuracy_drop or target_macs")
    if cost not in ("latency", "macs"):
        raise ConfigError(f"early exit: unknown cost {cost!r}", hint="latency or macs")
    if cost == "latency" and table.segment_ms is None:
        cost = "macs"  # an untimed table: MACs are the only cost known
    k = table.scores.shape[1]
    final = float(table.correct[:, -1].mean())
    static = table.static_macs
    unit = "mean_ms" if cost == "latency" else "mean_macs"

    def key(thresholds: list[float]) -> tuple[float, float, float]:
        got = simulate(table, thresholds)
        if budget == "accuracy_drop":
            over = max(0.0, (final - got["accuracy"]) * 100 + margin * got["drop_se_points"] - value)
            return (over, got[unit], -got["accuracy"])
        over = max(0.0, got["mean_macs"] / static - value)
        return (over, -got["accuracy"], got["mean_macs"])

    options = [_candidates(table.scores[:, i], candidates) for i in range(k)]
    shared = _candidates(table.scores.ravel(), candidates)
    starts = [[math.inf] * k] + [[t] * k for t in shared]
    best = min(starts, key=key)
    best_key = key(best)
    for _ in range(20):  # coordinate descent; converges in a few rounds
        changed = False
        for i in range(k):
            for t in options[i]:
                trial = [*best[:i], t, *best[i + 1:]]
                trial_key = key(trial)
                if trial_key < best_key:
                    best, best_key, changed = trial, trial_key, True
        if not changed:
            break
    got = simulate(table, best)
    static_ms = None if table.segment_ms is None else float(sum(table.segment_ms))
    return {"thresholds": best, "budget": budget, "value": value, "cost": cost, "margin": margin,
            "met": best_key[0] == 0.0, "accuracy": got["accuracy"], "final_accuracy": final,
            "drop_points": 100 * (final - got["accuracy"]), "drop_se_points": got["drop_se_points"],
            "mean_macs": got["mean_macs"], "static_macs": static, "macs_share": got["mean_macs"] / static,
            "expected_ms": got["mean_ms"], "static_ms": static_ms, "exit_rates": got["rates"],
            "samples": int(table.scores.shape[0])}
