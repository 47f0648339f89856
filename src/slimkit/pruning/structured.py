"""Structured pruning: score channel groups once, plan how many to cut, remove them physically.

``ChannelPruner`` separates the three parts Torch-Pruning's design suggests: *scoring* (a
criterion from :data:`IMPORTANCE`), *planning* (uniform or global allocation, per-layer ratios,
``round_to``, and a search that meets a MACs, parameter or latency target) and *surgery*
(Torch-Pruning's per-layer functions through the dependency graph). The applied removal is
recorded in ``model.slimkit_history`` so a saved model reloads by replaying it.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.pruning.config import StructuredPruning
from slimkit.pruning.graph import (
    ChannelGroup,
    build_graph,
    check_graph,
    list_groups,
    prune_group,
)
from slimkit.pruning.importance import ScoreContext, make_scorer, release

SEARCH_STEPS = 14


def example_for(model: nn.Module, example_inputs: Tensor | None, loader: Iterable[Any] | None) -> Tensor:
    """The tracing input: the one given, else one built from the model's spec, else a loader batch."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if example_inputs is not None:
        return example_inputs.to(device)
    kwargs = getattr(model, "slimkit_spec", {}).get("kwargs", {})
    if "in_channels" in kwargs and "input_size" in kwargs:
        size = kwargs["input_size"]
        return torch.zeros(1, kwargs["in_channels"], size, size, device=device)
    if loader is not None:
        return next(iter(loader))[0][:1].to(device)
    raise ConfigError(
        f"structured pruning traces the model, and got no example_inputs for {type(model).__name__}",
        hint="pass example_inputs=torch.zeros(1, C, H, W) (one input batch) or loader=...",
    )


class ChannelPruner:
    """Scores the channel groups of ``model`` once; plans and applies removals from the scores.

    >>> from slimkit.models import build_model
    >>> net = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    >>> pruner = ChannelPruner(net, StructuredPruning(ratio=0.5), torch.zeros(1, 1, 8, 8))
    >>> pruner.counts(0.5)
    {'features.0.conv': 4, 'features.1.conv': 8, 'classifier.fc1': 8}
    """

    def __init__(self, model: nn.Module, config: StructuredPruning, example_inputs: Tensor, *,
                 loader: Iterable[Any] | None = None) -> None:
        self.model, self.config, self.example = model, config, example_inputs
        was_training = model.training
        try:
            graph, ran = build_graph(model, example_inputs)
            self.kept_params = check_graph(model, graph, config.exclude, ran)
            groups, self.skipped = list_groups(model, graph, config.exclude, self.kept_params)
            context = ScoreContext(model, loader, calibration_batches=config.calibration_batches,
                                   activation_stat=config.activation_stat, seed=config.seed)
            scorer = make_scorer(config.criterion, context)
            try:
                scores = {g.name: scorer(g.group) for g in groups}
            finally:
                release(scorer)
        finally:
            model.train(was_training)
        self.groups = [g for g in groups if scores[g.name] is not None]
        self.skipped += [g.name for g in groups if scores[g.name] is None]
        self.scores: dict[str, Tensor] = {g.name: scores[g.name].detach().float().cpu() for g in self.groups}
        self._check_patterns()
        self._meta: nn.Module | None = None
        self.base_macs = count_macs(model, example_inputs[:1])
        self.base_params = count_params(model)

    def _check_patterns(self) -> None:
        names = [m for g in self.groups for m in g.members] + self.skipped
        for field_name, patterns in (("ratios", list(self.config.ratios)), ("exclude", list(self.config.exclude))):
            for pattern in patterns:
                if not any(fnmatch.fnmatchcase(n, pattern) for n in names) and not any(
                        fnmatch.fnmatchcase(n, pattern) for n, _ in self.model.named_modules()):
                    raise ConfigError(
                        f"StructuredPruning.{field_name}: pattern '{pattern}' matches no layer of {type(self.model).__name__}",
                        hint=f"prunable layers: {', '.join(g.name for g in self.groups)}",
                    )

    # ------------------------------------------------------------------ planning

    def override(self, group: ChannelGroup) -> float | None:
        for pattern, ratio in self.config.ratios.items():
            if group.matches([pattern]):
                return ratio
        return None

    def counts(self, s: float) -> dict[str, int]:
        """Channels to remove per group when layers without a fixed ratio lose share ``s``."""
        cfg = self.config
        removed: dict[str, int] = {}
        free = []
        for g in self.groups:
            fixed = self.override(g)
            if fixed is None:
                free.append(g)
                continue
            kept = round(g.channels * (1 - fixed))
            if kept < 1:
                raise ConfigError(
                    f"StructuredPruning.ratios: ratio {fixed} for layer '{g.name}' would remove all of its "
                    f"{g.channels} channels",
                    hint=f"use a ratio below {1 - 0.5 / g.channels:.3f} for '{g.name}', or leave it out of 'ratios'",
                )
            removed[g.name] = g.channels - kept
        if cfg.allocation == "global" and free and s > 0:
            removed.update(self._global(free, s))
        else:
            removed.update({g.name: g.channels - max(1, round(g.channels * (1 - s))) for g in free})
        return {g.name: self._round(g, removed[g.name]) for g in self.groups}

    def _global(self, groups: list[ChannelGroup], s: float) -> dict[str, int]:
        # Rank every channel of every group together; no group may lose more than max_layer_ratio.
        caps = {g.name: min(g.channels - 1, int(g.channels * self.config.max_layer_ratio)) for g in groups}
        entries = sorted((float(v), g.name) for g in groups for v in self.scores[g.name])
        budget = round(s * sum(g.channels for g in groups))
        removed = dict.fromkeys(caps, 0)
        for _, name in entries:
            if budget <= 0:
                break
            if removed[name] < caps[name]:
                removed[name] += 1
                budget -= 1
        return removed

    def _round(self, group: ChannelGroup, remove: int) -> int:
        step = self.config.round_to
        kept = group.channels - remove
        if step and group.channels > step:
            kept = min(group.channels, max(step, round(kept / step) * step))
        return group.channels - max(1, kept)

    def removals(self, counts: dict[str, int]) -> dict[str, list[int]]:
        """The lowest-scoring channel indices per group for ``counts``."""
        return {name: sorted(torch.argsort(self.scores[name], stable=True)[:n].tolist())
                for name, n in counts.items() if n > 0}

    def pruned_copy(self, counts: dict[str, int], *, meta: bool = False) -> nn.Module:
        """A pruned copy; ``meta=True`` gives one without data (on the meta device), which is all
        counting MACs and parameters needs, and far cheaper than running real kernels."""
        if not meta:
            model = copy.deepcopy(self.model)
            apply_removals(model, self.example, self.removals(counts), self.config.exclude, checks=False)
            return model
        if self._meta is None:
            self._meta = copy.deepcopy(self.model).to("meta")
        model = copy.deepcopy(self._meta)
        apply_removals(model, self.example.to("meta"), self.removals(counts), self.config.exclude, checks=False)
        return model

    def cost(self, counts: dict[str, int], kind: str) -> int:
        """MACs (per sample) or parameters of the model pruned by ``counts``."""
        model = self.pruned_copy(counts, meta=True)
        return count_macs(model, self.example[:1].to("meta")) if kind == "macs" else count_params(model)

    # ------------------------------------------------------------------ targets

    def solve(self) -> dict[str, int]:
        """Per-group removal counts that meet the config's target."""
        cfg = self.config
        if cfg.target is None:
            return self.counts(0.0)
        if cfg.target == "ratio":
            return self.counts(cfg.ratio)  # type: ignore[arg-type]
        measure, goal, label = self._metric()
        cache: dict[tuple, float] = {}

        def value(s: float) -> float:
            counts = self.counts(s)
            key = tuple(sorted(counts.items()))
            if key not in cache:
                cache[key] = measure(counts)
            return cache[key]

        lo, hi = 0.0, self.config.max_layer_ratio
        if value(hi) > goal:
            raise ModelError(
                f"StructuredPruning.{cfg.target}: cannot reach {label} {goal:.4g}; removing {hi:.0%} of every prunable "
                f"layer's channels still gives {value(hi):.4g} (layers left whole: {', '.join(self.skipped) or 'none'})",
                hint="relax the target, raise max_layer_ratio, or keep fewer layers",
            )
        for _ in range(SEARCH_STEPS):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if value(mid) <= goal else (mid, hi)
        return self.counts(hi)

    def _metric(self) -> tuple[Any, float, str]:
        cfg = self.config
        if cfg.target == "target_macs":
            return (lambda counts: self.cost(counts, "macs")), cfg.target_macs * self.base_macs, "MACs"
        if cfg.target == "target_params":
            return (lambda counts: self.cost(counts, "params")), cfg.target_params * self.base_params, "parameters"
        from slimkit.evaluate import measure_latency

        batch = cfg.latency_batch_size

        def latency(counts: dict[str, int]) -> float:
            stats = measure_latency({"m": self.pruned_copy(counts)}, self.example, batch_sizes=(batch,), warmup=3,
                                    repeats=15, threads=cfg.threads, memory=False)
            return stats["m"][batch]["median_ms"]

        return latency, float(cfg.latency_ms), f"latency (ms, batch {batch})"  # type: ignore[arg-type]


def apply_removals(model: nn.Module, example_inputs: Tensor, removals: dict[str, list[int]],
                   keep: Iterable[str] = (), *, checks: bool = True) -> dict[str, list[int]]:
    """Remove ``{group name: channel indices}`` from ``model`` in place; returns channel counts
    ``{group name: [before, after]}``. Used for pruning, search copies and replay alike
    (``checks=False`` skips the model checks, for copies of a model that passed them)."""
    was_training = model.training
    try:
        graph, ran = build_graph(model, example_inputs, checks=checks)
        kept_params = check_graph(model, graph, tuple(keep), ran)
        groups = {g.name: g for g in list_groups(model, graph, tuple(keep), kept_params)[0]}
        unknown = [name for name in removals if name not in groups]
        if unknown:
            raise ModelError(
                f"cannot prune channels of {unknown}: no such prunable layer in {type(model).__name__}",
                hint=f"prunable layers: {', '.join(groups)}",
            )
        channels = {}
        for name, idxs in removals.items():
            group = groups[name]
            prune_group(graph, group, idxs)
            channels[name] = [group.channels, group.channels - len(idxs)]
    finally:
        model.train(was_training)
    return channels


def prune_structured(model: nn.Module, config: StructuredPruning, example_inputs: Tensor | None = None, *,
                     loader: Iterable[Any] | None = None) -> nn.Module:
    """Remove channels from ``model`` in place as ``config`` says, and record the change.

    >>> from slimkit.models import build_model
    >>> net = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    >>> net = prune_structured(net, StructuredPruning(ratio=0.5))
    >>> net.features[0].conv.out_channels, net.slimkit_history[-1]["kind"]
    (4, 'prune_channels')
    """
    from slimkit.export.serialize import record_change
    from slimkit.pruning import replay  # noqa: F401  (registers the replayer record_change checks)

    example = example_for(model, example_inputs, loader)
    pruner = ChannelPruner(model, config, example, loader=loader)
    removals = pruner.removals(pruner.solve())
    channels = apply_removals(model, example, removals, config.exclude)
    record_change(
        model, "prune_channels",
        input_shape=list(example.shape),
        removed=removals, keep=list(config.exclude), channels=channels,
        config=config.to_dict(),
        macs=[pruner.base_macs, count_macs(model, example[:1])],
        params=[pruner.base_params, count_params(model)],
    )
    return model
