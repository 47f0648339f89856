"""Sensitivity analysis: prune each layer alone over a sweep of ratios, and choose per-layer ratios.

1. ``sensitivity(model, val_loader)`` prunes every channel group on its own at each ratio of the
   sweep (scores computed once) and measures validation accuracy and loss, MACs and parameters.
2. ``result.table()`` / ``result.markdown()`` / ``result.plot(path)`` show accuracy against ratio.
3. ``choose_ratios(result, target_macs=0.5)`` picks per-layer ratios that meet the target at the
   least predicted accuracy loss: greedy over the curves, each step taking the (layer, ratio)
   move with the smallest predicted loss per MAC saved, with the real MACs of the combined plan
   checked after every move. Pass the result to ``StructuredPruning(ratios=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.fileio import atomic_path
from slimkit.prune.config import StructuredPruning
from slimkit.prune.structured import ChannelPruner, example_for
from slimkit.train import evaluate_loss_acc

DEFAULT_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class SensitivityResult:
    """Per layer (group name) and ratio: validation accuracy, loss, whole-model MACs and params."""

    ratios: list[float]
    baseline: dict[str, float]  # accuracy, loss, macs, params of the unpruned model
    accuracy: dict[str, list[float]]
    loss: dict[str, list[float]]
    macs: dict[str, list[int]]
    params: dict[str, list[int]]
    criterion: str
    pruner: ChannelPruner | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "baseline": self.baseline, "accuracy": self.accuracy, "loss": self.loss,
                "macs": self.macs, "params": self.params, "criterion": self.criterion}

    def markdown(self) -> str:
        head = "| layer | " + " | ".join(f"{r:.0%}" for r in self.ratios) + " |"
        rows = [head, "|" + "---|" * (len(self.ratios) + 1)]
        for layer, accs in self.accuracy.items():
            rows.append(f"| {layer} | " + " | ".join(f"{a:.2%}" for a in accs) + " |")
        return f"Validation accuracy with one layer pruned (baseline {self.baseline['accuracy']:.2%}, " \
               f"criterion {self.criterion})\n\n" + "\n".join(rows) + "\n"

    def table(self) -> Any:
        from rich.table import Table

        table = Table("layer", *(f"{r:.0%}" for r in self.ratios),
                      title=f"accuracy with one layer pruned (baseline {self.baseline['accuracy']:.2%})")
        for layer, accs in self.accuracy.items():
            table.add_row(layer, *(f"{a:.2%}" for a in accs))
        return table

    def plot(self, path: str | Path) -> Path:
        """Write accuracy-versus-ratio curves as a PNG at ``path`` (atomically)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 4.5), dpi=110)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        for layer, accs in self.accuracy.items():
            axes.plot(self.ratios, [100 * a for a in accs], marker="o", label=layer)
        axes.axhline(100 * self.baseline["accuracy"], color="grey", linestyle="--", label="unpruned")
        axes.set(xlabel="share of the layer's channels removed", ylabel="validation accuracy (%)",
                 title=f"Sensitivity ({self.criterion})")
        axes.legend(fontsize=7)
        figure.tight_layout()
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
        return Path(path)


def sensitivity(model: nn.Module, val_loader: Iterable[Any], *, criterion: str = "l1",
                ratios: Sequence[float] = DEFAULT_RATIOS, example_inputs: Tensor | None = None,
                keep: Sequence[str] = (), round_to: int | None = None, loader: Iterable[Any] | None = None,
                max_batches: int | None = None) -> SensitivityResult:
    """Prune each layer alone at each ratio and score it on ``val_loader`` (``max_batches`` caps it).

    ``loader`` feeds data-driven criteria (taylor, activation); it defaults to ``val_loader``.
    """
    ratios = sorted(float(r) for r in ratios)
    if not ratios or any(not 0 < r < 1 for r in ratios):
        raise ConfigError(f"sensitivity ratios must be in (0, 1), got {ratios}", hint="e.g. ratios=(0.1, 0.3, 0.5, 0.7)")
    batches = list(islice(iter(val_loader), max_batches)) if max_batches else list(val_loader)
    example = example_for(model, example_inputs, batches)
    config = StructuredPruning(criterion=criterion, ratio=ratios[0], keep=tuple(keep), round_to=round_to)
    pruner = ChannelPruner(model, config, example, loader=loader if loader is not None else batches)
    base_loss, base_acc = evaluate_loss_acc(model, batches)
    baseline = {"accuracy": base_acc, "loss": base_loss, "macs": pruner.base_macs, "params": pruner.base_params}
    acc: dict[str, list[float]] = {}
    loss: dict[str, list[float]] = {}
    macs: dict[str, list[int]] = {}
    params: dict[str, list[int]] = {}
    for group in pruner.groups:
        for name in (acc, loss, macs, params):
            name[group.name] = []
        for ratio in ratios:
            pruned = pruner.pruned_copy(single(pruner, group.name, ratio))
            value_loss, value_acc = evaluate_loss_acc(pruned, batches)
            acc[group.name].append(value_acc)
            loss[group.name].append(value_loss)
            macs[group.name].append(count_macs(pruned, example[:1]))
            params[group.name].append(count_params(pruned))
    return SensitivityResult(ratios, baseline, acc, loss, macs, params, criterion, pruner)


def single(pruner: ChannelPruner, name: str, ratio: float) -> dict[str, int]:
    """Removal counts pruning only group ``name`` at ``ratio``."""
    counts = dict.fromkeys((g.name for g in pruner.groups), 0)
    group = next(g for g in pruner.groups if g.name == name)
    counts[name] = pruner._round(group, group.channels - max(1, round(group.channels * (1 - ratio))))
    return counts


def choose_ratios(result: SensitivityResult, *, target_macs: float | None = None,
                  target_params: float | None = None) -> dict[str, float]:
    """Per-layer ratios that keep at most ``target_macs`` (or ``target_params``) of the original,
    at the least predicted accuracy loss (the sum of the layers' own losses)."""
    if (target_macs is None) == (target_params is None):
        raise ConfigError("choose_ratios needs exactly one of target_macs or target_params")
    goal_share = target_macs if target_macs is not None else target_params
    if not 0 < goal_share < 1:  # type: ignore[operator]
        raise ConfigError(f"the target must be in (0, 1) (share of the original kept), got {goal_share}")
    pruner = result.pruner
    if pruner is None:
        raise ConfigError("choose_ratios needs the result of sensitivity() in this process (it holds the model)")
    kind = "macs" if target_macs is not None else "params"
    base = result.baseline[kind]
    goal = goal_share * base  # type: ignore[operator]
    single_cost = result.macs if kind == "macs" else result.params
    layers = list(result.accuracy)
    # Predicted loss of a layer at ratio i: accuracy drop (made monotone), CE rise as tie-break.
    predicted: dict[str, list[float]] = {}
    for layer in layers:
        running, curve = 0.0, []
        for a, l in zip(result.accuracy[layer], result.loss[layer]):
            running = max(running, (result.baseline["accuracy"] - a) + 1e-3 * (l - result.baseline["loss"]))
            curve.append(running)
        predicted[layer] = curve
    step = dict.fromkeys(layers, -1)

    def measure() -> float:
        counts = {g.name: single(pruner, g.name, result.ratios[step[g.name]])[g.name] if step.get(g.name, -1) >= 0 else 0
                  for g in pruner.groups}
        return pruner.cost(counts, kind)

    while measure() > goal:
        best = None
        for layer in layers:
            i = step[layer]
            loss_i = predicted[layer][i] if i >= 0 else 0.0
            saved_i = base - single_cost[layer][i] if i >= 0 else 0
            for j in range(i + 1, len(result.ratios)):
                gain = (base - single_cost[layer][j]) - saved_i
                if gain <= 0:
                    continue
                cost = max(predicted[layer][j] - loss_i, 0.0) / gain
                key = (cost, -gain)
                if best is None or key < best[0]:
                    best = (key, layer, j)
        if best is None:
            raise ModelError(f"cannot reach {kind} {goal_share:.0%} of the original with the ratios swept "
                             f"(up to {result.ratios[-1]:.0%} per layer)",
                             hint="sweep larger ratios or relax the target")
        step[best[1]] = best[2]
    return {layer: result.ratios[i] for layer, i in step.items() if i >= 0}


