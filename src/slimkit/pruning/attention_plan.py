"""Apply (and replay) a plan of removed layers, heads and feed-forward neurons.

One function does both, so that loading a saved model rebuilds exactly what pruning did:
layers are dropped first, then heads and neurons are removed by their indices in the layers
that remain. Every index is checked against the model before the first weight changes. The
model's own records follow the cut: module head counts, ``nn.TransformerEncoder.num_layers``,
and a Hugging Face config's ``num_hidden_layers``, ``intermediate_size`` (when every layer keeps
the same width) and ``pruned_heads`` (the original indices of the removed heads per layer, as
transformers 4.x's ``prune_heads`` kept them; ``num_attention_heads`` stays, since it fixes the
head size ``hidden_size / num_attention_heads``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from slimkit.errors import CheckpointError, ModelError
from slimkit.export.serialize import CHANGES
from slimkit.pruning.attention_sites import (
    drop_layers,
    find_ffns,
    find_heads,
    find_stacks,
    remove_heads,
    remove_neurons,
)


def _indices(plan: Any, what: str) -> dict[str, list[int]]:
    if plan is None:
        return {}
    if not isinstance(plan, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool)
                                                                       for i in v) for k, v in plan.items()):
        raise CheckpointError(f"the prune_attention record's '{what}' is not a mapping of paths to index lists",
                              hint="the model.json was edited or truncated")
    return {k: [int(i) for i in v] for k, v in plan.items()}


def _check(model: nn.Module, layers: dict) -> None:
    stacks = find_stacks(model)
    for stack, drop in layers.items():
        if stack not in stacks:
            raise ModelError(f"cannot drop layers of '{stack}': {type(model).__name__} has no such layer stack",
                             hint=f"layer stacks: {', '.join(stacks) or 'none'}")
        if any(not 0 <= i < len(stacks[stack]) for i in drop) or len(set(drop)) >= len(stacks[stack]):
            raise ModelError(f"cannot drop layers {drop} of '{stack}' ({len(stacks[stack])} layers, one must stay)")


def _check_sites(model: nn.Module, heads: dict, ffn: dict) -> None:
    """Every planned index names a head or neuron the model has, and every site keeps one."""
    for plan, sites, unit, where in ((heads, {s.name: s.heads for s in find_heads(model)}, "heads", "attention module"),
                                     (ffn, {s.name: s.width for s in find_ffns(model)}, "neurons",
                                      "feed-forward block")):
        for name, drop in plan.items():
            size = sites.get(name)
            if size is None:
                raise ModelError(f"cannot remove {unit} of '{name}': no {where} there",
                                 hint=f"{where}s: {', '.join(sites) or 'none'}")
            if any(not 0 <= i < size for i in drop) or len(set(drop)) >= size:
                raise ModelError(f"cannot remove {unit} {drop[:8]} of '{name}': it has {size} and must keep one",
                                 hint="the plan or record does not fit this model")


def _record_heads(model: nn.Module, removed: dict[int, Sequence[int]]) -> None:
    """Add the removed heads (current indices, by layer) to ``config.pruned_heads`` as original indices."""
    config = getattr(model, "config", None)
    total = getattr(config, "num_attention_heads", None)
    if config is None or not isinstance(total, int) or not removed:
        return
    pruned = {int(k): list(v) for k, v in (getattr(config, "pruned_heads", None) or {}).items()}
    for layer, heads in removed.items():
        before = sorted(pruned.get(layer, []))
        kept = [h for h in range(total) if h not in before]
        pruned[layer] = sorted(before + [kept[h] for h in heads])
    config.pruned_heads = pruned


def _record_width(model: nn.Module) -> None:
    config = getattr(model, "config", None)
    widths = {s.width for s in find_ffns(model)}
    if config is not None and isinstance(getattr(config, "intermediate_size", None), int) and len(widths) == 1:
        config.intermediate_size = widths.pop()


def apply_plan(model: nn.Module, *, layers: Any = None, heads: Any = None, ffn: Any = None) -> nn.Module:
    """Drop ``layers`` (``{stack: [indices]}``), then remove ``heads`` (``{attention path: [head
    indices]}``) and ``ffn`` neurons (``{layer path: [neuron indices]}``), in place."""
    layers, heads, ffn = _indices(layers, "layers"), _indices(heads, "heads"), _indices(ffn, "ffn")
    _check(model, layers)
    for stack, drop in layers.items():
        drop_layers(model, stack, drop)
    _check_sites(model, heads, ffn)
    sites = {s.name: s for s in find_heads(model)}
    by_layer: dict[int, Sequence[int]] = {}
    for name, drop in heads.items():
        remove_heads(model, sites[name], drop)
        if sites[name].kind == "hf" and sites[name].layer is not None:
            by_layer[sites[name].layer] = drop
    _record_heads(model, by_layer)
    blocks = {s.name: s for s in find_ffns(model)}
    for name, drop in ffn.items():
        remove_neurons(model, blocks[name], drop)
    if ffn:
        _record_width(model)
    return model


def replay_attention(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Redo a recorded ``prune_attention`` change on a freshly built model."""
    return apply_plan(model, layers=change.get("layers"), heads=change.get("heads"), ffn=change.get("ffn"))


if "prune_attention" not in CHANGES:
    CHANGES.add("prune_attention", replay_attention,
                doc="attention heads, feed-forward neurons and layers removed (slimkit.pruning.attention)")
