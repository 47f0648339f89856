"""Model A against model B on the same data and the same machine, in one process."""

from __future__ import annotations

import math
import platform
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import nn

from slimkit.config import Config, Seed
from slimkit.errors import ConfigError
from slimkit.evaluate.agreement import agreement
from slimkit.evaluate.cost import Saver, cost
from slimkit.evaluate.latency import measure_latency
from slimkit.evaluate.predict import model_device, predict
from slimkit.evaluate.quality import quality
from slimkit.evaluate.robustness import robustness
from slimkit.fileio import json_safe
from slimkit.modelio import example_from, map_tensors, take, tensors, to_device

__all__ = ["CompareConfig", "Comparison", "compare"]


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _times(ratio: float, more: str, less: str) -> str:
    if not math.isfinite(ratio) or ratio <= 0:
        return "n/a"
    value, word = (ratio, more) if ratio >= 1 else (1 / ratio, less)
    return f"{value:.1f}x {word}" if value < 100 else f"{value:.0f}x {word}"


def _fmt_int(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{int(n)}"


def _fmt_float(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


@dataclass
class Comparison:
    """The result of :func:`compare`.

    ``quality``, ``cost`` and ``robustness`` map each model's name to its dict (``cost[name]``
    also holds ``latency``: ``{batch_size: stats}``); ``agreement`` compares B against A;
    ``ratios`` holds ``size_ratio`` (bytes A / bytes B, "x smaller"), ``params_ratio``,
    ``nonzero_params_ratio``, ``macs_ratio``, ``speedup`` (``{batch_size: latency A / B}``)
    and ``accuracy_delta`` (B minus A, in percentage points).
    """

    names: tuple[str, str]
    quality: dict[str, dict]
    cost: dict[str, dict]
    agreement: dict
    ratios: dict
    robustness: dict[str, dict] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Everything as plain JSON types (NaN becomes null, batch-size keys strings)."""
        return json_safe(asdict(self))

    def summary(self) -> str:
        """One line, e.g. ``4.1x smaller, 2.3x faster (batch 1), -0.2 points accuracy``."""
        parts = [_times(self.ratios["size_ratio"], "smaller", "larger")]
        speedup = self.ratios["speedup"]
        if speedup:
            b = min(speedup)
            parts.append(f"{_times(speedup[b], 'faster', 'slower')} (batch {b})")
        parts.append(f"{self.ratios['accuracy_delta']:+.1f} points accuracy")
        return ", ".join(parts)

    def table(self):
        """A rich Table: one row per figure, a column per model, and the ratio or delta."""
        from rich.table import Table

        a, b = self.names
        qa, qb = self.quality[a], self.quality[b]
        ca, cb = self.cost[a], self.cost[b]
        table = Table(title=f"{a} vs {b}")
        table.add_column("metric")
        table.add_column(a, justify="right")
        table.add_column(b, justify="right")
        table.add_column("ratio / delta", justify="right")

        def points(key: str) -> None:
            table.add_row(
                key, f"{100 * qa[key]:.2f}%", f"{100 * qb[key]:.2f}%",
                f"{100 * (qb[key] - qa[key]):+.2f} pts",
            )

        def score(label: str, key: str, digits: int = 4) -> None:
            delta = qb[key] - qa[key]
            table.add_row(
                label, _fmt_float(qa[key], digits), _fmt_float(qb[key], digits),
                "n/a" if not math.isfinite(delta) else f"{delta:+.{digits}f}",
            )

        points("accuracy")
        score("macro-F1", "f1")
        score("ROC-AUC", "roc_auc")
        score("PR-AUC", "pr_auc")
        score("ECE", "ece")
        for label, key, ratio in (
            ("params", "params", self.ratios["params_ratio"]),
            ("nonzero params", "nonzero_params", self.ratios["nonzero_params_ratio"]),
            ("bytes", "bytes", self.ratios["size_ratio"]),
            ("MACs", "macs", self.ratios["macs_ratio"]),
        ):
            table.add_row(
                label, _fmt_int(ca[key]), _fmt_int(cb[key]), _times(ratio, "smaller", "larger")
            )
        for bs, speedup in self.ratios["speedup"].items():
            la, lb = ca["latency"][bs], cb["latency"][bs]
            table.add_row(
                f"latency b{bs} (median ms)", f"{la['median_ms']:.3f}", f"{lb['median_ms']:.3f}",
                _times(speedup, "faster", "slower"),
            )
            if "peak_memory_bytes" in la:
                pa, pb = la["peak_memory_bytes"], lb["peak_memory_bytes"]
                table.add_row(
                    f"peak memory b{bs} ({la['memory_method']})", _fmt_int(pa), _fmt_int(pb),
                    _times(_ratio(pa, pb), "smaller", "larger"),
                )
        if self.robustness:
            ra, rb = self.robustness[a], self.robustness[b]
            for key in ra:
                if key != "clean":
                    table.add_row(
                        f"accuracy, {key}", f"{100 * ra[key]:.2f}%", f"{100 * rb[key]:.2f}%",
                        f"{100 * (rb[key] - ra[key]):+.2f} pts",
                    )
        return table


def _ratios(qa: dict, qb: dict, ca: dict, cb: dict) -> dict:
    return {
        "size_ratio": _ratio(ca["bytes"], cb["bytes"]),
        "params_ratio": _ratio(ca["params"], cb["params"]),
        "nonzero_params_ratio": _ratio(ca["nonzero_params"], cb["nonzero_params"]),
        "macs_ratio": _ratio(ca["macs"], cb["macs"]),
        "speedup": {
            bs: _ratio(ca["latency"][bs]["median_ms"], cb["latency"][bs]["median_ms"])
            for bs in ca["latency"]
        },
        "accuracy_delta": 100 * (qb["accuracy"] - qa["accuracy"]),
    }


class CompareConfig(Config):
    """How :func:`compare` measures: latency ``batch_sizes``, ``warmup`` and ``repeats`` (the two
    models alternate), ``threads`` (fixed; None keeps the current count), ``topk`` accuracies,
    robustness ``noise`` levels and pixel ``shift`` (empty to skip), and the ``seed`` of every
    random input. ``sequence_length`` times text models at that many tokens: every integer
    input of two or more axes (token IDs, masks, segment IDs) is tiled or cut to it along axis 1.

    >>> CompareConfig(batch_sizes=[1, 32]).batch_sizes
    (1, 32)
    """

    batch_sizes: tuple[int, ...] = (1, 256)
    warmup: int = Field(5, ge=0)
    repeats: int = Field(30, ge=1)
    threads: int | None = Field(None, ge=1)
    topk: tuple[int, ...] = (1, 5)
    noise: tuple[float, ...] = (0.1, 0.2, 0.3)
    shift: tuple[int, ...] = (2,)
    seed: Seed = 0
    sequence_length: int | None = Field(None, ge=1)

    @field_validator("batch_sizes", "topk")
    @classmethod
    def _positive(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if not values or any(v < 1 for v in values):
            raise ValueError(f"must be positive integers, got {list(values)}")
        return values


def at_length(inputs: Any, length: int) -> Any:
    """``inputs`` with every integer tensor of two or more axes tiled or cut to ``length`` along
    axis 1 (the sequence axis of token IDs and masks); float inputs are left as they are.

    >>> at_length({"input_ids": torch.tensor([[5, 6, 7]])}, 5)["input_ids"].tolist()
    [[5, 6, 7, 5, 6]]
    """

    def resize(t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point() or t.dim() < 2:
            return t
        reps = -(-length // t.shape[1])
        return t.repeat(1, reps, *([1] * (t.dim() - 2)))[:, :length].contiguous()

    if not any(not t.is_floating_point() and t.dim() >= 2 for _, t in tensors(inputs)):
        raise ConfigError("sequence_length applies to token inputs (integer tensors of shape (batch, tokens, ...)), "
                          "and these inputs have none", hint="leave sequence_length unset for this model")
    return map_tensors(inputs, resize)


def compare(
    model_a: nn.Module,
    model_b: nn.Module,
    loader: Iterable,
    config: CompareConfig | None = None,
    *,
    names: tuple[str, str] = ("original", "compressed"),
    example_input: Any = None,
    savers: tuple[Saver | None, Saver | None] = (None, None),
) -> Comparison:
    """Measure ``model_a`` and ``model_b`` on the same loader and machine, in one process.

    Quality and robustness come from full passes over ``loader`` (unshuffled, so agreement
    pairs up samples); latency alternates the two models (see :func:`measure_latency`);
    ``example_input`` (default: the loader's first batch) fixes the sample shape and, sliced
    to one sample, the MACs; for text models its sequence length is the one timed, unless
    ``config.sequence_length`` sets another.
    ``savers`` are optional per-model artifact writers for the byte count. ``config`` says how
    (:class:`CompareConfig`).

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> x, y = torch.randn(16, 4), torch.arange(16) % 2
    >>> m = nn.Linear(4, 2)
    >>> quick = CompareConfig(batch_sizes=[1], warmup=0, repeats=2, noise=[], shift=[], topk=[1])
    >>> c = compare(m, m, DataLoader(TensorDataset(x, y), batch_size=8), quick)
    >>> c.ratios["params_ratio"], c.agreement["agreement"]
    (1.0, 1.0)
    """
    config = config if config is not None else CompareConfig()
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"names must be two different strings, got {names!r}",
                          hint='e.g. names=("original", "compressed")')
    if example_input is None:
        example_input = example_from(loader, 2)
    if config.sequence_length is not None:
        example_input = at_length(example_input, config.sequence_length)
    models = dict(zip(names, (model_a, model_b)))
    preds = {name: predict(model, loader) for name, model in models.items()}
    qual = {name: quality(p.logits, p.targets, topk=config.topk) for name, p in preds.items()}
    robust = {}
    if config.noise or any(config.shift):
        robust = {name: robustness(m, loader, noise=config.noise, shift=config.shift, seed=config.seed)
                  for name, m in models.items()}
    costs = {
        name: cost(m, to_device(take(example_input, 1), model_device(m)), saver=saver)
        for (name, m), saver in zip(models.items(), savers)
    }
    latency = measure_latency(models, to_device(example_input, "cpu"), batch_sizes=config.batch_sizes,
                              warmup=config.warmup, repeats=config.repeats, threads=config.threads, seed=config.seed,
                              settle=True)
    for name in names:
        costs[name]["latency"] = latency[name]
    a, b = names
    return Comparison(
        names=(a, b),
        quality=qual,
        cost=costs,
        agreement=agreement(preds[a].logits, preds[b].logits, preds[a].targets),
        ratios=_ratios(qual[a], qual[b], costs[a], costs[b]),
        robustness=robust,
        settings={
            **config.to_dict(), "threads": next(iter(latency[a].values()))["threads"],
            "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "num_samples": len(preds[a]),
        },
    )
