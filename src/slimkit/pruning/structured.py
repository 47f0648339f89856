"""Structured pruning: score channel groups once, plan how many to cut, remove them physically.

``ChannelPruner`` separates the three parts Torch-Pruning's design suggests: *scoring* (a
criterion from :data:`IMPORTANCE`), *planning* (uniform or global allocation, per-layer ratios,
``round_to``, and a search that meets a MACs, parameter or latency target) and *surgery*
(Torch-Pruning's per-layer functions through the dependency graph). ``prune_structured`` (in
:mod:`slimkit.pruning.surgery`) runs them on a copy and swaps the result in only on success.

Rounding kept channel counts (``round_to``): a group split into parts (a grouped conv's
``groups``, an attention layer's heads) always keeps a multiple of its parts. ``round_to=k``
also rounds to multiples of ``k`` where the layer has more than ``k`` channels; ``"auto"`` rounds
groups of at least 32 channels to multiples of 8 and leaves narrower ones exact. Why 8: the CPU
kernels (oneDNN convolutions in blocked ``nChw8c``/``nChw16c`` layouts, MLAS and MKL GEMMs)
process channels in vectors of 8 (AVX2) or 16 (AVX-512) floats, and pad a ragged last block, so a
width of 45 costs about what 48 does; below 32 channels a rounding step of 8 is a large share of
the layer, so accuracy would pay more than speed gains.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from slimkit import modelio
from slimkit.errors import ConfigError, ModelError, SlimkitError
from slimkit.evaluate import count_macs, count_params
from slimkit.pruning.config import StructuredPruning
from slimkit.pruning.graph import (
    ATTENTION_WHOLE,
    ChannelGroup,
    attention_projections,
    build_graph,
    check_graph,
    check_removal,
    list_groups,
    prune_group,
)
from slimkit.pruning.head_width import check_head_width
from slimkit.pruning.importance import ScoreContext, make_scorer, release
from slimkit.pruning.sandbox import Sandbox, copy_model, trial_groups

SEARCH_STEPS = 14
#: ``round_to="auto"``: groups at least this wide keep a multiple of AUTO_STEP channels.
AUTO_MIN_CHANNELS, AUTO_STEP = 32, 8


def example_for(model: nn.Module, example_inputs: Any, loader: Iterable[Any] | None) -> Any:
    """The tracing input: the one given, else one built from the model's recorded input spec,
    else the first sample of ``loader`` (see :func:`slimkit.modelio.example_for`)."""
    found = modelio.example_for(model, example_inputs, loader, n=1)
    if found is None:
        raise ConfigError(
            f"structured pruning traces the model, and got no example_inputs for {type(model).__name__}",
            hint="pass example_inputs=<one input batch> (a tensor, a tuple or a dict of tensors) or loader=...",
        )
    return found


class ChannelPruner:
    """Scores the channel groups of ``model`` once; plans and applies removals from the scores.

    Groups the tracer cannot follow, that a criterion cannot score or whose smallest cut breaks
    the model are left whole; ``skipped`` says why, by group.

    >>> from slimkit.models import build_model
    >>> net = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    >>> pruner = ChannelPruner(net, StructuredPruning(ratio=0.5), torch.zeros(1, 1, 8, 8))
    >>> pruner.counts(0.5)
    {'features.0.conv': 4, 'features.1.conv': 8, 'classifier.fc1': 8}
    """

    def __init__(self, model: nn.Module, config: StructuredPruning, example_inputs: Any, *,
                 loader: Iterable[Any] | None = None) -> None:
        self.model, self.config, self.example = model, config, example_inputs
        self.reached: float | None = None  # the searched metric's value for the plan solve() chose
        was_training = model.training
        try:
            graph, ran = build_graph(model, example_inputs)
            self.kept_params = check_graph(model, graph, config.exclude, ran)
            groups, self.skipped = list_groups(model, graph, config.exclude, self.kept_params, config.include)
            self._check_patterns(groups)
            scores = self._score(groups, loader)
        finally:
            model.train(was_training)
        self.sandbox = Sandbox(model, modelio.take(example_inputs, 1))
        scored = [g for g in groups if g.name in scores]
        self.skipped.update(trial_groups(self.sandbox, scored, self._cut))
        self.groups = [g for g in scored if g.name not in self.skipped]
        self.scores: dict[str, Tensor] = {g.name: scores[g.name] for g in self.groups}
        self.base_macs = count_macs(self.sandbox.model, self.sandbox.example)
        self.base_params = count_params(model)

    def _check_patterns(self, groups: list[ChannelGroup]) -> None:
        names = [m for g in groups for m in g.members] + list(self.skipped)
        layers = [n for n, _ in self.model.named_modules()]
        for pattern, ratio in self.config.ratios.items():
            heads = [n for n, why in self.skipped.items() if why == ATTENTION_WHOLE and fnmatch.fnmatchcase(n, pattern)]
            if heads:
                size = attention_projections(self.model)[heads[0]]
                width = self.model.get_submodule(heads[0]).out_features
                check_head_width(heads[0], width - round(width * ratio), size)
                raise ConfigError(f"StructuredPruning.ratios: '{pattern}' names attention projection '{heads[0]}', whose "
                                  "heads are removed whole by AttentionPruning, not by channels",
                                  hint="use AttentionPruning(heads=...) for heads")
        for field_name in ("ratios", "exclude", "include"):
            for pattern in getattr(self.config, field_name):
                if not any(fnmatch.fnmatchcase(n, pattern) for n in names + layers):
                    raise ConfigError(
                        f"StructuredPruning.{field_name}: pattern '{pattern}' matches no layer of {type(self.model).__name__}",
                        hint=f"prunable layers: {', '.join(g.name for g in groups)}",
                    )

    def _score(self, groups: list[ChannelGroup], loader: Iterable[Any] | None) -> dict[str, Tensor]:
        """Per group, one score per *position* (channel, or channel within each division)."""
        cfg = self.config
        context = ScoreContext(self.model, loader, calibration_batches=cfg.calibration_batches,
                               activation_stat=cfg.activation_stat, seed=cfg.seed)
        scorer = make_scorer(cfg.criterion, context)
        scores: dict[str, Tensor] = {}
        try:
            for group in groups:
                try:
                    value = scorer(group.group)
                except SlimkitError:
                    raise
                except Exception as exc:  # noqa: BLE001  (a coupling the criterion cannot read: that group stays whole)
                    self.skipped[group.name] = f"criterion '{cfg.criterion}' cannot score it ({type(exc).__name__}: {exc})"
                    continue
                if value is None:
                    self.skipped[group.name] = f"criterion '{cfg.criterion}' finds nothing to score in it"
                    continue
                scores[group.name] = value.detach().float().cpu().view(group.divisions, -1).mean(0)
        finally:
            release(scorer)
        return scores

    def _cut(self, model: nn.Module, example: Any, removals: dict[str, list[int]]) -> Any:
        return apply_removals(model, example, removals, self.config.exclude, include=self.config.include, checks=False)

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
        # Rank every position of every group together; no group may lose more than max_layer_ratio.
        caps = {g.name: min(g.channels - g.divisions, int(g.channels * self.config.max_layer_ratio)) for g in groups}
        parts = {g.name: g.divisions for g in groups}
        entries = sorted((float(v), g.name) for g in groups for v in self.scores[g.name])
        budget = round(s * sum(g.channels for g in groups))
        removed = dict.fromkeys(caps, 0)
        for _, name in entries:
            if budget <= 0:
                break
            if removed[name] + parts[name] <= caps[name]:
                removed[name] += parts[name]
                budget -= parts[name]
        return removed

    def step(self, group: ChannelGroup) -> int:
        """Kept channel counts of ``group`` are multiples of this (see the module docstring)."""
        wanted = self.config.round_to
        if wanted == "auto":
            wanted = AUTO_STEP if group.channels >= AUTO_MIN_CHANNELS else None
        if wanted and group.channels > math.lcm(wanted, group.divisions):
            return math.lcm(wanted, group.divisions)
        return group.divisions

    def _round(self, group: ChannelGroup, remove: int) -> int:
        step = self.step(group)
        kept = group.channels - remove
        if step > 1 and group.channels > step:
            kept = min(group.channels, max(step, round(kept / step) * step))
        return group.channels - max(1, kept)

    def removals(self, counts: dict[str, int]) -> dict[str, list[int]]:
        """The lowest-scoring channel indices per group for ``counts`` (the same positions in
        every division of a divided group)."""
        out = {}
        for g in self.groups:
            n = counts.get(g.name, 0) // g.divisions
            if n > 0:
                size = g.channels // g.divisions
                positions = torch.argsort(self.scores[g.name], stable=True)[:n].tolist()
                out[g.name] = sorted(p + k * size for p in positions for k in range(g.divisions))
        return out

    def pruned_copy(self, counts: dict[str, int], *, meta: bool = False) -> nn.Module:
        """A pruned copy; ``meta=True`` cuts the sandbox's copy instead (traced on one sample),
        which is all counting MACs and parameters needs."""
        if meta:
            model = self.sandbox.copy()
            self._cut(model, self.sandbox.example, self.removals(counts))
            return model
        model = copy_model(self.model)
        self._cut(model, self.example, self.removals(counts))
        return model

    def cost(self, counts: dict[str, int], kind: str) -> int:
        """MACs (per sample) or parameters of the model pruned by ``counts``."""
        model = self.pruned_copy(counts, meta=True)
        return count_macs(model, self.sandbox.example) if kind == "macs" else count_params(model)

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
        counts = self.counts(hi)
        if cfg.target != "latency_ms":  # timings are too noisy to fine-tune a plan on
            counts = self._give_back(counts, measure, goal)
        self.reached = measure(counts) if cfg.target != "latency_ms" else value(hi)
        return counts

    def _give_back(self, counts: dict[str, int], measure: Any, goal: float) -> dict[str, int]:
        """Undo removals, one rounding step at a time, while the target still holds.

        One ratio for every layer moves in coarse steps where groups are divided (heads, conv
        groups) or rounded, and can overshoot the target; this walks back towards it, restoring
        first the group whose best removed channel scored highest."""
        fixed = {g.name for g in self.groups if self.override(g) is not None}
        budget = max(8, 2 * len(self.groups))  # evaluations: each cuts, traces and counts a copy
        while budget > 0:
            options = []
            for g in self.groups:
                step, n = self.step(g), counts[g.name]
                if g.name in fixed or n <= 0:
                    continue
                removed = torch.sort(self.scores[g.name], stable=True).values[: n // g.divisions]
                options.append((-float(removed[-1]), g.name, min(step, n)))
            for _, name, step in sorted(options):
                budget -= 1
                trial = {**counts, name: counts[name] - step}
                if measure(trial) <= goal:
                    counts = trial
                    break
                if budget <= 0:
                    break
            else:
                break
        return counts

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


def apply_removals(model: nn.Module, example_inputs: Any, removals: dict[str, list[int]],
                   keep: Iterable[str] = (), *, include: Iterable[str] = ("*",),
                   checks: bool = True) -> dict[str, list[int]]:
    """Remove ``{group name: channel indices}`` from ``model`` in place; returns channel counts
    ``{group name: [before, after]}``. Used for pruning, search copies and replay alike
    (``checks=False`` skips the model checks, for copies of a model that passed them).

    Every removal is checked (channels that exist, not all of them, whole heads and conv groups)
    before the first weight changes."""
    was_training = model.training
    try:
        graph, ran = build_graph(model, example_inputs, checks=checks)
        kept_params = check_graph(model, graph, tuple(keep), ran)
        groups = {g.name: g for g in list_groups(model, graph, tuple(keep), kept_params, tuple(include))[0]}
        unknown = [name for name in removals if name not in groups]
        heads = attention_projections(model)
        for name in unknown:
            if name in heads:  # refused before any weight changes: heads are cut whole or not at all
                width = model.get_submodule(name).out_features - len(removals[name])
                check_head_width(name, width, heads[name])
                raise ModelError(f"cannot cut channels of attention projection '{name}': heads are removed whole, by "
                                 "AttentionPruning; nothing was changed", hint="use AttentionPruning(heads=...)")
        if unknown:
            raise ModelError(
                f"cannot prune channels of {unknown}: no such prunable layer in {type(model).__name__}",
                hint=f"prunable layers: {', '.join(groups)}",
            )
        for name, idxs in removals.items():
            check_removal(groups[name], [int(i) for i in idxs])
        channels = {}
        for name, idxs in removals.items():
            group = groups[name]
            try:
                prune_group(graph, group, [int(i) for i in idxs])
            except SlimkitError:
                raise
            except Exception as exc:  # a pruner that fails mid-way: say which group, never a raw error
                raise ModelError(f"cutting {len(idxs)} channels of '{name}' failed: {type(exc).__name__}: {exc}",
                                 hint=f"leave it whole with exclude=['{name}']") from exc
            channels[name] = [group.channels, group.channels - len(idxs)]
    finally:
        model.train(was_training)
    return channels
