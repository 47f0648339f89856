"""Sensitivity analysis: prune each layer alone over a sweep of ratios, and choose per-layer ratios.

1. ``sensitivity(model, val_loader)`` prunes every channel group on its own at each ratio of the
   sweep (scores computed once) and measures validation accuracy and loss, MACs and parameters.
2. ``result.table()`` / ``result.markdown()`` / ``result.plot(path)`` show accuracy against ratio.
3. ``choose_ratios(result, target_macs=0.5)`` picks per-layer ratios that meet the target at the
   least predicted accuracy loss: greedy over the curves, each step taking the (layer, ratio)
   move with the smallest predicted loss per unit of cost saved, with the real MACs of the
   combined plan checked after every move. Pass the result to ``StructuredPruning(ratios=...)``.

Why latency is a target of its own: at equal MACs, layers differ a lot in time. The early,
high-resolution layers spend most of their time in memory-bound BatchNorm, ReLU and pooling,
which MACs do not count, so a plan that meets a MACs target with the fewest accuracy points can
still be slow. ``sensitivity(..., latency_batch_size=256)`` also times every single-layer cut
against the unpruned model (alternating, median), and ``choose_ratios(..., target_latency=0.5)``
then meets a latency share as well, predicted from those cuts (their savings add up).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.fileio import atomic_path
from slimkit.pruning.config import StructuredPruning
from slimkit.pruning.recalibrate import recalibrate_bn
from slimkit.pruning.structured import ChannelPruner, example_for
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
    #: per layer and ratio: measured latency with that one cut, as a share of the unpruned model's
    latency: dict[str, list[float]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"ratios": self.ratios, "baseline": self.baseline, "accuracy": self.accuracy, "loss": self.loss,
               "macs": self.macs, "params": self.params, "criterion": self.criterion}
        return out if self.latency is None else {**out, "latency": self.latency}

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
                ratios: Sequence[float] = DEFAULT_RATIOS, example_inputs: Any = None,
                keep: Sequence[str] = (), round_to: int | None = None, loader: Iterable[Any] | None = None,
                max_batches: int | None = None, latency_batch_size: int | None = None,
                latency_repeats: int = 5, threads: int | None = None, bn_batches: int = 8) -> SensitivityResult:
    """Prune each layer alone at each ratio and score it on ``val_loader`` (``max_batches`` caps it).

    ``loader`` feeds data-driven criteria (taylor, activation) and the BatchNorm statistics that
    each cut is re-estimated with before scoring (``bn_batches`` batches; 0 scores the cut with
    the unpruned model's statistics, which mostly measures their mismatch); it defaults to
    ``val_loader``.
    With ``latency_batch_size`` every cut is also timed at that batch size against the unpruned
    model (``latency_repeats`` alternating runs on ``threads`` threads, median), for
    ``choose_ratios(..., target_latency=...)``.
    """
    if latency_batch_size is not None and (latency_batch_size < 1 or latency_repeats < 1):
        raise ConfigError(f"need latency_batch_size >= 1 and latency_repeats >= 1, got {latency_batch_size} "
                          f"and {latency_repeats}", hint="e.g. latency_batch_size=256, latency_repeats=5")
    ratios = sorted(float(r) for r in ratios)
    if not ratios or any(not 0 < r < 1 for r in ratios):
        raise ConfigError(f"sensitivity ratios must be in (0, 1), got {ratios}", hint="e.g. ratios=(0.1, 0.3, 0.5, 0.7)")
    batches = list(islice(iter(val_loader), max_batches)) if max_batches else list(val_loader)
    example = example_for(model, example_inputs, batches)
    one = modelio.take(example, 1)
    config = StructuredPruning(criterion=criterion, ratio=ratios[0], exclude=tuple(keep), round_to=round_to)
    data = loader if loader is not None else batches
    pruner = ChannelPruner(model, config, example, loader=data)
    base_loss, base_acc = evaluate_loss_acc(model, batches)
    baseline = {"accuracy": base_acc, "loss": base_loss, "macs": pruner.base_macs, "params": pruner.base_params}
    acc: dict[str, list[float]] = {}
    loss: dict[str, list[float]] = {}
    macs: dict[str, list[int]] = {}
    params: dict[str, list[int]] = {}
    latency: dict[str, list[float]] | None = None if latency_batch_size is None else {}
    for group in pruner.groups:
        for name in (acc, loss, macs, params):
            name[group.name] = []
        for ratio in ratios:
            pruned = pruner.pruned_copy(single(pruner, group.name, ratio))
            if bn_batches:
                recalibrate_bn(pruned, data, max_batches=bn_batches)
            value_loss, value_acc = evaluate_loss_acc(pruned, batches)
            acc[group.name].append(value_acc)
            loss[group.name].append(value_loss)
            macs[group.name].append(count_macs(pruned, one))
            params[group.name].append(count_params(pruned))
            if latency is not None:
                latency.setdefault(group.name, []).append(
                    latency_share(model, pruned, one, latency_batch_size, latency_repeats, threads))
    return SensitivityResult(ratios, baseline, acc, loss, macs, params, criterion, pruner, latency)


def latency_share(model: nn.Module, pruned: nn.Module, example: Tensor, batch_size: int, repeats: int,
                  threads: int | None) -> float:
    """Median latency of ``pruned`` over that of ``model``, the two alternating in one run."""
    from slimkit.evaluate import measure_latency

    stats = measure_latency({"model": model, "pruned": pruned}, example, batch_sizes=(batch_size,), warmup=1,
                            repeats=repeats, threads=threads, memory=False)
    return stats["pruned"][batch_size]["median_ms"] / stats["model"][batch_size]["median_ms"]


def single(pruner: ChannelPruner, name: str, ratio: float) -> dict[str, int]:
    """Removal counts pruning only group ``name`` at ``ratio``."""
    counts = dict.fromkeys((g.name for g in pruner.groups), 0)
    group = next(g for g in pruner.groups if g.name == name)
    counts[name] = pruner._round(group, group.channels - max(1, round(group.channels * (1 - ratio))))
    return counts


def choose_ratios(result: SensitivityResult, *, target_macs: float | None = None,
                  target_params: float | None = None, target_latency: float | None = None,
                  give_back: bool = False) -> dict[str, float]:
    """Per-layer ratios that keep at most the given shares of the original's MACs, parameters
    and latency (any that are set), at the least predicted accuracy loss (the sum of the layers'
    own losses).

    MACs and parameters of each candidate plan are counted exactly; latency is predicted by
    adding up the savings of the single-layer cuts that ``sensitivity(latency_batch_size=...)``
    measured, so measure the chosen plan before relying on it.

    The greedy moves in the sweep's steps and can overshoot a target (its last move may cut a
    layer by a whole step more than needed). ``give_back=True`` then steps layers back, the
    move that saves the most predicted loss first, as long as every target still holds, so the
    plan lands closer to the targets.
    """
    goals = _goals(result, {"macs": target_macs, "params": target_params, "latency": target_latency})
    plan = _Plan(result, goals)
    while unmet := plan.unmet():
        move = plan.best_move(unmet)
        if move is None:
            wanted = ", ".join(f"{kind} {goals[kind]:.0%}" for kind in unmet)
            raise ModelError(f"cannot reach {wanted} of the original with the ratios swept "
                             f"(up to {result.ratios[-1]:.0%} per layer)",
                             hint="sweep larger ratios or relax the target")
        plan.step[move[0]] = move[1]
    if give_back:
        plan.give_back()
    return {layer: result.ratios[i] for layer, i in plan.step.items() if i >= 0}


def _goals(result: SensitivityResult, wanted: dict[str, float | None]) -> dict[str, float]:
    """The targets that are set, checked against what ``result`` measured."""
    goals = {kind: share for kind, share in wanted.items() if share is not None}
    if not goals:
        raise ConfigError("choose_ratios needs a target: target_macs, target_params or target_latency",
                          hint="each is the share of the original to keep, e.g. target_macs=0.5")
    for kind, share in goals.items():
        if not 0 < share < 1:
            raise ConfigError(f"the {kind} target must be in (0, 1) (share of the original kept), got {share}")
    if result.pruner is None:
        raise ConfigError("choose_ratios needs the result of sensitivity() in this process (it holds the model)")
    if "latency" in goals and result.latency is None:
        raise ConfigError("target_latency needs latencies measured by sensitivity()",
                          hint="call sensitivity(..., latency_batch_size=256)")
    return goals


class _Plan:
    """A per-layer choice of sweep step (-1: not pruned) and what it is predicted to cost.

    ``saved[kind][layer][i]``: share of ``kind`` saved by cutting ``layer`` alone at ratio i, made
    monotone in i (timing noise); ``loss[layer][i]``: its predicted loss, the accuracy drop (made
    monotone) with the rise in cross-entropy as a tie-break."""

    def __init__(self, result: SensitivityResult, goals: dict[str, float]) -> None:
        self.result, self.goals = result, goals
        self.layers = list(result.accuracy)
        self.saved = {kind: {layer: _monotone([1 - c / result.baseline[kind] for c in getattr(result, kind)[layer]])
                             for layer in self.layers} for kind in ("macs", "params") if kind in goals}
        if "latency" in goals:
            self.saved["latency"] = {layer: _monotone([1 - c for c in result.latency[layer]])  # type: ignore[index]
                                     for layer in self.layers}
        base = result.baseline
        self.loss = {layer: _monotone([(base["accuracy"] - a) + 1e-3 * (lo - base["loss"])
                                       for a, lo in zip(result.accuracy[layer], result.loss[layer])], floor=0.0)
                     for layer in self.layers}
        self.step = dict.fromkeys(self.layers, -1)

    def kept(self, kind: str) -> float:
        """Share of ``kind`` the plan keeps: counted for MACs and parameters, predicted for latency."""
        if kind == "latency":
            return 1 - sum(self.saved[kind][layer][i] for layer, i in self.step.items() if i >= 0)
        pruner, ratios = self.result.pruner, self.result.ratios
        counts = {g.name: single(pruner, g.name, ratios[self.step[g.name]])[g.name]  # type: ignore[arg-type]
                  if self.step.get(g.name, -1) >= 0 else 0 for g in pruner.groups}  # type: ignore[union-attr]
        return pruner.cost(counts, kind) / self.result.baseline[kind]  # type: ignore[union-attr]

    def unmet(self) -> dict[str, float]:
        """The targets not met yet, with how far the plan is from each (share of the original)."""
        gaps = {kind: self.kept(kind) - share for kind, share in self.goals.items()}
        return {kind: gap for kind, gap in gaps.items() if gap > 0}

    def best_move(self, gaps: dict[str, float]) -> tuple[str, int] | None:
        """The (layer, step) move with the least predicted loss per unit of progress on the unmet
        targets, each progress a share of its own gap capped at closing it (overshooting a target
        earns nothing and only costs accuracy)."""
        best = None
        for layer in self.layers:
            i = self.step[layer]
            loss_i = self.loss[layer][i] if i >= 0 else 0.0
            for j in range(i + 1, len(self.result.ratios)):
                gain = sum(min((self.saved[k][layer][j] - (self.saved[k][layer][i] if i >= 0 else 0.0)) / gap, 1.0)
                           for k, gap in gaps.items())
                if gain <= 0:
                    continue
                key = (max(self.loss[layer][j] - loss_i, 0.0) / gain, -gain)
                if best is None or key < best[0]:
                    best = (key, layer, j)
        return None if best is None else (best[1], best[2])

    def give_back(self) -> None:
        """Step layers back one sweep step at a time, the largest predicted saving first, while
        every target still holds."""
        while True:
            options = sorted(((self.loss[layer][i] - (self.loss[layer][i - 1] if i > 0 else 0.0), layer)
                              for layer, i in self.step.items() if i >= 0), reverse=True)
            for _, layer in options:
                self.step[layer] -= 1
                if not self.unmet():
                    break
                self.step[layer] += 1
            else:
                return


def _monotone(values: list[float], floor: float | None = None) -> list[float]:
    """Running maximum of ``values`` (starting from ``floor`` when given)."""
    out, running = [], floor if floor is not None else float("-inf")
    for value in values:
        running = max(running, value)
        out.append(running)
    return out
