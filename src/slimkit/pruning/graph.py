"""The channel dependency graph: Torch-Pruning's DependencyGraph, wrapped with checks that speak.

Torch-Pruning traces the model once and returns *groups*: the layers whose channels must be cut
together (a conv, its BatchNorm, the next layer's inputs; every branch of a residual add; the
inputs of a concatenation; the linear layer after a flatten; a depthwise conv and its producer;
the LayerNorms, embeddings and attention layers on a transformer's residual stream).
This module adds what a user needs around it: stable names for groups, the logits layer kept
automatically, ``include``/``exclude`` globs, *divisions* (a grouped convolution or an attention
layer splits its channels into groups or heads, and every one must lose the same positions, so
kept counts stay multiples of ``groups`` and heads stay whole), and clear errors for models the
tracer cannot follow or custom layers it cannot cut (``register_layer`` teaches it one).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.pruning.tracing import CUSTOM_LAYERS, build_graph, probe

__all__ = ["CUSTOM_LAYERS", "ChannelGroup", "PruningWarning", "build_graph", "check_graph", "check_removal",
           "list_groups", "probe", "prune_group", "register_layer"]

#: Layer types whose output channels root a group.
ROOTS = (nn.modules.conv._ConvNd, nn.Linear)


class PruningWarning(UserWarning):
    """Structured pruning did what it could, but not everything asked (layers left whole, a
    target missed by more than 5%)."""


def register_layer(layer_type: type[nn.Module], pruner: Any) -> None:
    """Teach structured pruning a custom layer: ``pruner`` is a ``torch_pruning.BasePruningFunc``
    (``prune_out_channels``, ``prune_in_channels``, ``get_out_channels``, ``get_in_channels``).

    Register it in every process that prunes or loads such a model (loading replays the pruning).
    """
    if not (isinstance(layer_type, type) and issubclass(layer_type, nn.Module)):
        raise ConfigError(f"register_layer needs an nn.Module subclass, got {layer_type!r}")
    CUSTOM_LAYERS[layer_type] = pruner


@dataclass
class ChannelGroup:
    """Channels that are removed together. ``name`` is the first layer (in module order) whose
    output channels the group cuts; ``members`` are all of them (conv, linear, BN, LayerNorm...).

    ``divisions`` > 1 when a member splits the channels into equal parts (a grouped conv's
    groups, an attention layer's heads, named in ``divided_by``): every part must lose the same
    positions, so removals come in multiples of ``divisions``."""

    name: str
    members: tuple[str, ...]
    channels: int
    root: nn.Module
    handler: Any
    group: Any = field(repr=False)
    divisions: int = 1
    divided_by: tuple[str, ...] = ()
    heads: bool = False  # the divisions are attention heads
    moved: bool = False  # a member's outputs are transposed onto a non-channel axis (see axes.py)

    def matches(self, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(m, p) for m in self.members for p in patterns)

    @property
    def unit(self) -> str:
        return "attention heads" if self.heads else "channel groups"

    def positions(self, idxs: Sequence[int]) -> list[list[int]]:
        """The removed positions within each division."""
        size = self.channels // self.divisions
        return [sorted(i - k * size for i in idxs if k * size <= i < (k + 1) * size) for k in range(self.divisions)]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _broadcast_parameter(param: Any, dim: int) -> bool:
    """A loose parameter broadcast over the batch along its channel dimension: a position
    embedding ``(1, L, D)``, a CLS token ``(1, 1, D)`` or a per-channel ``(1, C, 1, 1)`` scale.
    Torch-Pruning cuts it along ``dim``, its last non-singleton dimension."""
    shape = tuple(param.shape)
    return len(shape) >= 2 and shape[0] == 1 and 0 < dim < len(shape) and all(s == 1 for s in shape[dim + 1:])


def check_graph(model: nn.Module, graph: Any, keep: Sequence[str], ran: set[str] | None = None) -> set[Any]:
    """Refuse models the graph would cut wrongly; return the parameters of kept custom layers.

    Loose parameters broadcast over the batch (position embeddings, CLS tokens) are cut with
    their group; any other parameter outside a known layer type is refused unless its owner is in
    ``keep``. ``ran`` (the modules that ran, from :func:`probe`) enables the lost-layer check."""
    names = {m: n for n, m in model.named_modules()}
    kept_params: set[Any] = set()
    for param, dim in graph.unwrapped_parameters:
        pname = graph._param_to_name.get(param, "?")
        owner = pname.rsplit(".", 1)[0] if "." in pname else ""
        if owner and _matches(owner, keep) or _matches(pname, keep):
            kept_params.add(param)
            continue
        if _broadcast_parameter(param, dim):
            continue
        layer = model.get_submodule(owner) if owner else model
        raise ModelError(
            f"module '{owner or '(root)'}' ({type(layer).__name__}) holds parameter '{pname}' of shape "
            f"{tuple(param.shape)}, a layer type structured pruning does not know how to cut",
            hint=f"leave its channels with exclude=['{owner or pname}'], or register a pruner for {type(layer).__name__} "
            "with slimkit.pruning.register_layer(cls, pruner)",
        )
    traced = set(graph.module2node)
    lost = [n for m, n in names.items() if isinstance(m, ROOTS) and m not in traced
            and ran is not None and n in ran and not _matches(n, keep)]
    if lost:
        raise ModelError(
            f"the tracer lost layers {lost[:5]}: their outputs do not reach the model output through autograd "
            "(detach(), .data, numpy or torch.no_grad() inside forward?)",
            hint=f"keep them whole with exclude={lost[:5]}, or make forward differentiable",
        )
    return kept_params


# ----------------------------------------------------------------------------- listing groups


def _root_groups(graph: Any) -> Iterator[tuple[nn.Module, Any]]:
    """``(root layer, full group)`` for every group rooted at a conv or linear layer's outputs,
    or ``(root layer, exception)`` where Torch-Pruning cannot follow the channels."""
    visited: set[int] = set()
    for module in list(graph.module2node):
        if not isinstance(module, ROOTS) or id(module) in visited:
            continue
        pruner = graph.get_pruner_of_module(module)
        try:
            channels = pruner.get_out_channels(module) if pruner is not None else None
            if channels is None:
                continue
            group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(channels)))
        except Exception as exc:  # noqa: BLE001  (index mapping Torch-Pruning cannot do: reported, the layer left whole)
            visited.add(id(module))
            yield module, exc
            continue
        for item in group:
            if graph.is_out_channel_pruning_fn(item.dep.handler):
                visited.add(id(item.dep.target.module))
        yield module, group


def _depthwise(module: Any) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1


def _divisions(graph: Any, group: Any, channels: int, names: dict[Any, str]) -> tuple[int, tuple[str, ...], bool] | str:
    """How many equal parts the group's channels form (lcm over its members), the members that
    divide them, and whether they are attention heads; or why the group cannot be cut."""
    parts, by, heads = 1, [], False
    for item in group:
        module, handler = item.dep.target.module, item.dep.handler
        if not isinstance(module, nn.Module) or _depthwise(module):
            continue
        if isinstance(module, nn.MultiheadAttention):
            count, heads = module.num_heads, True
        else:
            pruner = graph.get_pruner_of_module(module)
            if pruner is None:
                continue
            out = graph.is_out_channel_pruning_fn(handler)
            count = pruner.get_out_channel_groups(module) if out else pruner.get_in_channel_groups(module)
        if count > 1:
            name = names.get(module, type(module).__name__)
            if len(item.idxs) != channels:
                return f"'{name}' splits its channels into {count} groups and reads them through a concatenation"
            parts, by = math.lcm(parts, count), [*by, name]
    if channels % parts:
        return f"its {channels} channels do not split evenly into {parts} groups ({', '.join(by)})"
    return parts, tuple(by), heads


@dataclass
class _Found:
    """What listing learned about one group before deciding whether it may be cut."""

    group: Any
    name: str
    members: tuple[str, ...]
    channels: int | None
    is_output: bool
    moved: bool
    uses_kept: bool


def _inspect(graph: Any, group: Any, names: dict[Any, str], order: dict[str, int], kept_params: set[Any]) -> _Found:
    import torch_pruning as tp

    outs = [item.dep.target for item in group if graph.is_out_channel_pruning_fn(item.dep.handler)]
    members = tuple(sorted({names[n.module] for n in outs if n.module in names}, key=order.get))
    layers = [m for m in members if isinstance(graph.model.get_submodule(m), ROOTS)]
    plain = [m for m in layers if not _depthwise(graph.model.get_submodule(m))]
    name = (plain or layers or list(members) or ["?"])[0]
    # Cutting the logits layer would change what the model predicts: it is never pruned. A layer
    # whose outputs were only cut off by axes.py is no output: the trial run judges it.
    moved = [getattr(node, "slimkit_moved", False) for node in outs]
    is_output = any(not node.outputs and not was_moved or any(o.type == tp.ops.OPTYPE.OUTPUT for o in node.outputs)
                    for node, was_moved in zip(outs, moved))
    uses_kept = any(item.dep.target.module in kept_params for item in group)
    return _Found(group, name, members, graph.get_out_channels(group[0].dep.target.module), is_output, any(moved),
                  uses_kept)


#: Why the channels of Hugging Face attention projections are never cut here.
ATTENTION_WHOLE = "(attention projections: remove whole heads with AttentionPruning)"


def attention_projections(model: nn.Module) -> dict[str, int]:
    """The query/key/value Linears of Hugging Face attention modules, with their head size.

    Their outputs are split into heads by a reshape that channel surgery cannot see: cutting
    channels would regroup the survivors into heads that mix the originals while the module
    still counts its old heads, so those groups stay whole (AttentionPruning removes heads)."""
    from slimkit.pruning.attention_sites import find_heads

    return {path: site.head_size for site in find_heads(model) if site.kind == "hf" for path in site.projections}


def _why_whole(found: _Found, include: Sequence[str], exclude: Sequence[str],
               attention: dict[str, int] | None = None) -> str | None:
    """Why a group is left whole, or None if it may be cut. Reasons starting with "(" are the
    user's choice or by design and are not warned about."""
    if attention and any(m in attention for m in found.members):
        return ATTENTION_WHOLE
    if found.is_output:
        return "(model output)"
    if found.uses_kept:
        return "(shares channels with an excluded layer)"
    if found.channels is None or found.channels < 2:
        return "(fewer than 2 channels)"
    if any(_matches(m, exclude) for m in found.members):
        return "(excluded)"
    if not any(_matches(m, include) for m in found.members):
        return "(not included)"
    return None


def list_groups(model: nn.Module, graph: Any, keep: Sequence[str], kept_params: set[Any] = frozenset(),
                include: Sequence[str] = ("*",)) -> tuple[list[ChannelGroup], dict[str, str]]:
    """Prunable groups (named, in module order) and the groups left whole, with the reason.

    A group is prunable if one of its members matches ``include`` and none matches ``keep``
    (the ``exclude`` globs)."""
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    names = {m: n for n, m in model.named_modules()}
    groups: list[ChannelGroup] = []
    skipped: dict[str, str] = {}
    attention = attention_projections(model)
    for root, group in _root_groups(graph):
        if isinstance(group, Exception):
            skipped[names.get(root, "?")] = f"Torch-Pruning cannot follow its channels ({type(group).__name__}: {group})"
            continue
        found = _inspect(graph, group, names, order, kept_params)
        why = _why_whole(found, include, keep, attention)
        parts = _divisions(graph, group, found.channels or 0, names) if why is None else why
        if isinstance(parts, str):
            skipped[found.name] = parts
            continue
        groups.append(ChannelGroup(found.name, found.members, int(found.channels), group[0].dep.target.module,
                                   group[0].dep.handler, group, *parts, moved=found.moved))
    groups.sort(key=lambda g: order.get(g.name, 0))
    return groups, skipped


# ----------------------------------------------------------------------------- cutting


def check_removal(group: ChannelGroup, idxs: Sequence[int]) -> None:
    """Refuse a removal that would empty the group, name channels it does not have, or cut across
    its divisions (attention heads, conv groups): raised before anything is changed."""
    wrong = [i for i in idxs if not 0 <= int(i) < group.channels]
    if wrong or len(set(idxs)) != len(idxs):
        raise ModelError(f"cannot remove channels {sorted(idxs)[:8]} of '{group.name}': it has {group.channels} "
                         "channels and each may be removed once", hint="the record or plan does not fit this model")
    if len(idxs) >= group.channels:
        raise ModelError(
            f"pruning would remove all {group.channels} channels of '{group.name}'",
            hint=f"lower the ratio for '{group.name}' or leave it whole with exclude=['{group.name}']",
        )
    if group.divisions == 1:
        return
    kept = group.channels - len(idxs)
    if kept % group.divisions:
        raise ModelError(
            f"keeping {kept} of the {group.channels} channels of '{group.name}' is not a multiple of its "
            f"{group.divisions} {group.unit} ({', '.join(group.divided_by)}); nothing was changed",
            hint=f"keep a multiple of {group.divisions} channels (slimkit's own plans do), or exclude=['{group.name}']",
        )
    per = group.positions(idxs)
    if any(p != per[0] for p in per):
        raise ModelError(
            f"removing channels {sorted(idxs)[:8]} of '{group.name}' would cut across its {group.divisions} "
            f"{group.unit} ({', '.join(group.divided_by)}): each must lose the same positions; nothing was changed",
            hint="let slimkit plan the cut (ratio or a target), or remove the same positions from every part",
        )


def prune_group(graph: Any, group: ChannelGroup, idxs: list[int]) -> None:
    """Remove channels ``idxs`` of ``group`` from every coupled layer."""
    check_removal(group, idxs)
    pruning = graph.get_pruning_group(group.root, group.handler, sorted(int(i) for i in idxs))
    if not graph.check_pruning_group(pruning):
        raise ModelError(
            f"pruning {len(idxs)} of {group.channels} channels of '{group.name}' would empty a coupled layer",
            hint=f"lower the ratio for '{group.name}' or leave it whole with exclude=['{group.name}']",
        )
    pruning.prune()
