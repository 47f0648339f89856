"""The channel dependency graph: Torch-Pruning's DependencyGraph, wrapped with checks that speak.

Torch-Pruning traces the model once and returns *groups*: the layers whose channels must be cut
together (a conv, its BatchNorm, the next layer's inputs; every branch of a residual add; the
inputs of a concatenation; the linear layer after a flatten; a depthwise conv and its producer).
This module adds what a user needs around it: stable names for groups, the logits layer kept
automatically, ``keep`` globs, and clear errors for models the tracer cannot follow or custom
layers it cannot cut (with ``register_layer`` as the way to teach it one).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from slimkit.errors import ConfigError, ModelError

#: Pruners for the user's own layer types: ``{layer_class: torch_pruning BasePruningFunc}``.
CUSTOM_LAYERS: dict[type[nn.Module], Any] = {}


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
    output channels the group cuts; ``members`` are all of them (conv, linear, BN)."""

    name: str
    members: tuple[str, ...]
    channels: int
    root: nn.Module
    handler: Any
    group: Any = field(repr=False)

    def matches(self, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(m, p) for m in self.members for p in patterns)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def probe(model: nn.Module, example_inputs: Tensor) -> set[str]:
    """Run the model once and return the names of the modules that ran; on failure raise a
    ModelError naming the innermost module that was running."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []
    ran: set[str] = set()
    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(lambda m, _: stack.append(names.get(m, "?"))))
        handles.append(module.register_forward_hook(lambda m, *_: ran.add(stack.pop() if stack else "?")))
    try:
        with torch.no_grad():
            model(example_inputs)
    except Exception as exc:  # any failure in user code: say where it happened
        where = stack[-1] if stack else type(model).__name__
        raise ModelError(
            f"cannot run {type(model).__name__} on example inputs of shape {tuple(example_inputs.shape)}: "
            f"the forward pass failed in module '{where or '(root)'}': {exc}",
            hint="pass example_inputs shaped like one real batch (N, C, H, W); if that module cannot be traced, "
            f"leave it whole with exclude=['{where}']",
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    return ran


def build_graph(model: nn.Module, example_inputs: Tensor, *, checks: bool = True) -> tuple[Any, set[str] | None]:
    """Trace ``model`` into a Torch-Pruning DependencyGraph, with errors that name the module.

    Returns the graph and the names of the modules that ran on ``example_inputs`` (None with
    ``checks=False``, which skips the probing run: for copies of a model already checked).
    """
    import torch_pruning as tp

    bad = [n for n, m in model.named_modules() if parametrize.is_parametrized(m)]
    if bad:
        raise ModelError(
            f"layers {bad[:5]} carry parametrizations (unstructured pruning masks?), which structured pruning cannot cut",
            hint="call slimkit.pruning.make_permanent(model) first",
        )
    model.eval()
    ran = probe(model, example_inputs) if checks else None
    try:
        with torch.enable_grad():
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=example_inputs, verbose=False, customized_pruners=dict(CUSTOM_LAYERS),
            )
    except Exception as exc:  # the tracer's own failures are not actionable as they stand
        raise ModelError(
            f"Torch-Pruning could not trace {type(model).__name__}: {type(exc).__name__}: {exc}",
            hint="leave the layer it fails on whole with exclude=[...], or register a pruner with slimkit.pruning.register_layer",
        ) from exc
    return graph, ran


def check_graph(model: nn.Module, graph: Any, keep: Sequence[str], ran: set[str] | None = None) -> set[Any]:
    """Refuse models the graph would cut wrongly; return the parameters of kept custom layers.

    ``ran`` (the modules that ran, from :func:`probe`) enables the lost-layer check."""
    names = {m: n for n, m in model.named_modules()}
    kept_params: set[Any] = set()
    for param, _dim in graph.unwrapped_parameters:
        pname = graph._param_to_name.get(param, "?")
        owner = pname.rsplit(".", 1)[0] if "." in pname else ""
        if owner and _matches(owner, keep):
            kept_params.add(param)
            continue
        layer = model.get_submodule(owner) if owner else model
        raise ModelError(
            f"module '{owner or '(root)'}' ({type(layer).__name__}) holds parameter '{pname}' of shape "
            f"{tuple(param.shape)}, a layer type structured pruning does not know how to cut",
            hint=f"leave its channels with exclude=['{owner}'], or register a pruner for {type(layer).__name__} "
            "with slimkit.pruning.register_layer(cls, pruner)",
        )
    prunable = (nn.modules.conv._ConvNd, nn.Linear)
    traced = set(graph.module2node)
    lost = [n for m, n in names.items() if isinstance(m, prunable) and m not in traced
            and ran is not None and n in ran and not _matches(n, keep)]
    if lost:
        raise ModelError(
            f"the tracer lost layers {lost[:5]}: their outputs do not reach the model output through autograd "
            "(detach(), .data, numpy or torch.no_grad() inside forward?)",
            hint=f"keep them whole with exclude={lost[:5]}, or make forward differentiable",
        )
    return kept_params


def list_groups(model: nn.Module, graph: Any, keep: Sequence[str], kept_params: set[Any] = frozenset()) -> tuple[list[ChannelGroup], list[str]]:
    """Prunable groups (named, in module order) and the names of groups left whole."""
    import torch_pruning as tp

    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    names = {m: n for n, m in model.named_modules()}
    groups: list[ChannelGroup] = []
    skipped: list[str] = []
    for group in graph.get_all_groups(root_module_types=(nn.modules.conv._ConvNd, nn.Linear)):
        outs = [item.dep.target for item in group if graph.is_out_channel_pruning_fn(item.dep.handler)]
        members = tuple(sorted({names[n.module] for n in outs if n.module in names}, key=order.get))
        layers = [m for m in members if isinstance(model.get_submodule(m), (nn.modules.conv._ConvNd, nn.Linear))]
        plain = [m for m in layers if not _depthwise(model.get_submodule(m))]
        name = (plain or layers or list(members) or ["?"])[0]
        # Cutting the logits layer would change what the model predicts: it is never pruned.
        is_output = any(not node.outputs or any(o.type == tp.ops.OPTYPE.OUTPUT for o in node.outputs) for node in outs)
        uses_kept = any(item.dep.target.module in kept_params for item in group)
        root = group[0].dep.target.module
        channels = graph.get_out_channels(root)
        if is_output or uses_kept or channels is None or channels < 2 or _matches_any(members, keep):
            skipped.append(name)
            continue
        groups.append(ChannelGroup(name, members, int(channels), root, group[0].dep.handler, group))
    groups.sort(key=lambda g: order.get(g.name, 0))
    return groups, skipped


def _matches_any(members: Sequence[str], patterns: Sequence[str]) -> bool:
    return any(_matches(m, patterns) for m in members)


def _depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1


def prune_group(graph: Any, group: ChannelGroup, idxs: list[int]) -> None:
    """Remove channels ``idxs`` of ``group`` from every coupled layer."""
    if len(idxs) >= group.channels:
        raise ModelError(
            f"pruning would remove all {group.channels} channels of '{group.name}'",
            hint=f"lower the ratio for '{group.name}' or leave it whole with exclude=['{group.name}']",
        )
    pruning = graph.get_pruning_group(group.root, group.handler, sorted(int(i) for i in idxs))
    if not graph.check_pruning_group(pruning):
        raise ModelError(
            f"pruning {len(idxs)} of {group.channels} channels of '{group.name}' would empty a coupled layer",
            hint=f"lower the ratio for '{group.name}' or leave it whole with exclude=['{group.name}']",
        )
    pruning.prune()
