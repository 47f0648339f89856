"""Mixed precision: measure each layer's sensitivity, then pick per-layer bits under a size budget.

1. Sensitivity: quantize *only* that layer's weights at each candidate width and measure the
   damage on calibration data: the mean squared error of the logits against the float model
   (``metric="output_error"``) or the accuracy drop (``"accuracy"``, needs labels).
2. Allocation: start every layer at the widest choice; while the packed weights exceed the
   budget, take the narrowing step that costs the least sensitivity per byte saved.
3. Report: :meth:`MixedPlan.table` (rich) and :meth:`MixedPlan.plot` (matplotlib PNG).

Weights only: activations stay float here (``LowBit`` adds 8-bit activations).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import ConfigError, ModelError
from slimkit.export.serialize import record_change, record_report
from slimkit.quantization import _pt2e
from slimkit.quantization.config import MixedPrecision
from slimkit.quantization.lowbit import (
    LOWBIT_TYPES,
    LayerPlan,
    LowBitWeight,
    apply_plan,
    packed_bytes,
)
from slimkit.quantization.ptq import QUANTIZE, float_copy

__all__ = ["LayerChoice", "MixedPlan", "allocate", "layer_bytes", "sensitivity"]
FLOAT = 32


@dataclass
class LayerChoice:
    """One layer: its size, measured sensitivity per width, and the chosen width (32 = float)."""

    name: str
    numel: int
    groups: int
    sensitivity: dict[int, float]
    bits: int = FLOAT

    @property
    def bytes(self) -> int:
        return layer_bytes(self.numel, self.groups, self.bits)


@dataclass
class MixedPlan:
    """The allocation: per-layer choices, the budget and the resulting packed weight bytes."""

    layers: list[LayerChoice]
    budget_bytes: int
    metric: str
    fp32_bytes: int = field(init=False)
    total_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.fp32_bytes = sum(4 * c.numel for c in self.layers)
        self.total_bytes = sum(c.bytes for c in self.layers)

    def bits(self) -> dict[str, int]:
        return {c.name: c.bits for c in self.layers}

    def to_dict(self) -> dict[str, Any]:
        layers = [{**asdict(c), "sensitivity": {str(k): v for k, v in c.sensitivity.items()}, "bytes": c.bytes}
                  for c in self.layers]
        return {"layers": layers, "budget_bytes": self.budget_bytes, "metric": self.metric,
                "fp32_bytes": self.fp32_bytes, "total_bytes": self.total_bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MixedPlan:
        """The plan back from :meth:`to_dict` (as saved in ``report_of(model, "quantize")["plan"]``)."""
        layers = [LayerChoice(row["name"], row["numel"], row["groups"],
                              {int(k): float(v) for k, v in row["sensitivity"].items()}, row["bits"])
                  for row in data["layers"]]
        return cls(layers, data["budget_bytes"], data["metric"])

    def table(self) -> Any:
        """A rich Table: layer, params, sensitivity per width, chosen width and bytes."""
        from rich.table import Table

        widths = sorted({b for c in self.layers for b in c.sensitivity if b != FLOAT}, reverse=True)
        table = Table(title=f"mixed precision: {self.total_bytes:,} of {self.budget_bytes:,} budget bytes "
                            f"(fp32 {self.fp32_bytes:,}); sensitivity = {self.metric}")
        for col in ["layer", "params", *(f"sens@{b}" for b in widths), "bits", "bytes"]:
            table.add_column(col, justify="left" if col == "layer" else "right")
        for c in self.layers:
            table.add_row(c.name, f"{c.numel:,}", *(f"{c.sensitivity.get(b, math.nan):.3g}" for b in widths),
                          "float" if c.bits == FLOAT else str(c.bits), f"{c.bytes:,}")
        return table

    def plot(self, path: str | Path) -> Path:
        """Bits per layer (bars) over sensitivity per width (lines, log scale), as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [c.name for c in self.layers]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 0.5 * len(names)), 6), sharex=True)
        top.bar(names, [c.bits for c in self.layers], color="tab:blue")
        top.set_ylabel("bits (32 = float)")
        top.set_title(f"{self.total_bytes:,} B packed weights, budget {self.budget_bytes:,} B")
        for b in sorted({b for c in self.layers for b in c.sensitivity if b != FLOAT}, reverse=True):
            bottom.plot(names, [max(c.sensitivity.get(b, math.nan), 1e-12) for c in self.layers], marker="o", label=f"{b} bit")
        bottom.set_yscale("log")
        bottom.set_ylabel(f"sensitivity ({self.metric})")
        bottom.legend()
        bottom.tick_params(axis="x", rotation=60)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def layer_bytes(numel: int, groups: int, bits: int) -> int:
    """Packed bytes of a layer's weight at ``bits`` (symmetric), or float32 bytes at 32.

    >>> layer_bytes(1000, 10, 32), layer_bytes(1000, 10, 4)
    (4000, 540)
    """
    return 4 * numel if bits == FLOAT else packed_bytes(numel, groups, LayerPlan(bits))


def _score(model: nn.Module, data: list[tuple[Tensor, Tensor | None]], reference: list[Tensor], metric: str) -> float:
    with torch.no_grad():
        outs = [model(x) for x, _ in data]
    if metric == "accuracy":
        correct = lambda logits: sum(int((o.argmax(1) == y).sum()) for o, (_, y) in zip(logits, data))
        total = sum(len(y) for _, y in data)
        return (correct(reference) - correct(outs)) / total
    return float(sum(((o - r) ** 2).mean() for o, r in zip(outs, reference)) / len(outs))


def sensitivity(model: nn.Module, names: list[str], data: list[tuple[Tensor, Tensor | None]], choices: list[int], *,
                metric: str = "output_error", group_size: int | None = None) -> dict[str, dict[int, float]]:
    """``{layer: {bits: damage}}`` with only that layer quantized (weights) at ``bits``."""
    if metric == "accuracy" and any(y is None for _, y in data):
        raise ConfigError("metric='accuracy' needs labelled calibration batches (x, y)",
                          hint="pass a loader of (x, y) batches, or use metric='output_error'")
    model.eval()
    with torch.no_grad():
        reference = [model(x) for x, _ in data]
    out: dict[str, dict[int, float]] = {}
    for name in names:
        layer = model.get_submodule(name)
        out[name] = {FLOAT: 0.0}
        for bits in (b for b in choices if b != FLOAT):
            parametrize.register_parametrization(layer, "weight", LowBitWeight(LayerPlan(bits, group_size)))
            try:
                out[name][bits] = max(_score(model, data, reference, metric), 0.0)
            finally:
                parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    return out


def allocate(layers: list[LayerChoice], choices: list[int], budget_bytes: int) -> list[LayerChoice]:
    """Set each layer's ``bits`` (in place): greedy narrowing by least sensitivity per byte saved."""
    order = sorted(choices, reverse=True)
    for c in layers:
        c.bits = order[0]
    while sum(c.bytes for c in layers) > budget_bytes:
        best, best_cost = None, math.inf
        for c in layers:
            i = order.index(c.bits)
            if i + 1 == len(order):
                continue
            nxt = order[i + 1]
            saved = c.bytes - layer_bytes(c.numel, c.groups, nxt)
            cost = max(c.sensitivity[nxt] - c.sensitivity[c.bits], 0.0) / max(saved, 1)
            if saved > 0 and cost < best_cost:
                best, best_cost = (c, nxt), cost
        if best is None:
            smallest = sum(layer_bytes(c.numel, c.groups, order[-1]) for c in layers)
            raise ModelError(f"size budget of {budget_bytes:,} bytes cannot be met: even {order[-1]} bits "
                             f"everywhere takes {smallest:,} bytes",
                             hint="raise the budget, add narrower choices, or exclude fewer layers")
        best[0].bits = best[1]
    return layers


def _labelled(loader: Any, limit: int) -> list[tuple[Tensor, Tensor | None]]:
    out = []
    for batch in loader:
        if len(out) >= limit:
            break
        if isinstance(batch, (tuple, list)):
            out.append((batch[0].float(), batch[1] if len(batch) > 1 else None))
        else:
            out.append((batch.float(), None))
    return out


@QUANTIZE.register(MixedPrecision)
def mixed_precision(model: nn.Module, config: MixedPrecision, calib: Any, example: Tensor | None) -> nn.Module:
    """Low-bit weights with a per-layer width chosen to meet the size budget."""
    from slimkit.quantization.calibrate import calibration_batches

    _pt2e.check_quantizable(model, config)
    calibration_batches(calib, config.calibration_batches, model=model, example=example)  # checks: empty, shape
    data = _labelled(calib, config.calibration_batches)
    base = float_copy(model)
    names = [n for n in _pt2e.weighted_layers(base, config) if isinstance(base.get_submodule(n), LOWBIT_TYPES)]
    sens = sensitivity(base, names, data, config.choices, metric=config.metric, group_size=config.group_size)
    layers = []
    for n in names:
        w = base.get_submodule(n).weight
        row = w[0].numel()
        groups = w.shape[0] * math.ceil(row / (config.group_size or row))
        layers.append(LayerChoice(n, w.numel(), groups, sens[n]))
    fp32 = sum(4 * c.numel for c in layers)
    budget = config.size_bytes if config.size_bytes is not None else int(config.fraction * fp32)
    plan = MixedPlan(allocate(layers, config.choices, budget), budget, config.metric)
    chosen = {c.name: LayerPlan(c.bits, config.group_size) for c in plan.layers if c.bits != FLOAT}
    apply_plan(base, chosen)
    if chosen:
        record_change(base, "lowbit", layers={n: asdict(p) for n, p in chosen.items()}, activations=False)
    record_report(base, "quantize", {"kind": "mixed", "scheme": config.to_dict(), "plan": plan.to_dict(),
                                     "quantized_layers": list(chosen)})
    return base
