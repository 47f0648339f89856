"""Copies to try cuts on, and the trial run of groups.

Counting what a plan costs and checking that a cut runs need pruned copies of the model, one
sample of input and one forward pass each (see :class:`Sandbox` for why not on the meta device).

Before a group is ever planned, :func:`trial_groups` removes one position from it on a copy
and runs the copy: a group the graph got wrong (a layer Torch-Pruning cannot follow, an output
that would change shape) is left whole with the reason, instead of failing later in the middle
of the surgery.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from slimkit import modelio
from slimkit.errors import ModelError
from slimkit.evaluate.cost import reference_kernels
from slimkit.pruning.graph import ChannelGroup
from slimkit.pruning.tracing import output_tensors


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``, or a ModelError saying why there is none."""
    try:
        return copy.deepcopy(model)
    except Exception as exc:  # a user attribute that cannot be copied (a lock, a file handle...)
        raise ModelError(
            f"cannot copy {type(model).__name__} ({type(exc).__name__}: {exc}); structured pruning works on a copy "
            "so that a failure never leaves the model half-cut",
            hint="move what cannot be deep-copied out of the model's attributes",
        ) from exc


def output_shapes(model: nn.Module, inputs: Any) -> list[tuple[int, ...]]:
    """Shapes of every output tensor of one forward pass (eval mode, no gradients)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), reference_kernels():
            return [tuple(t.shape) for t in output_tensors(modelio.call(model, inputs))]
    finally:
        model.train(was)


class Sandbox:
    """A copy of a model and a one-sample example input to cut, count and run.

    It lives on the model's own device. PyTorch's meta device would allocate nothing, but it runs
    BatchNorm and friends through Python decompositions (and imports them first, seconds), which
    costs far more than computing a one-sample forward pass of the models pruned here."""

    def __init__(self, model: nn.Module, example: Any) -> None:
        self.shapes = output_shapes(model, example)
        self.model, self.example = copy_model(model), example

    def copy(self) -> nn.Module:
        return copy.deepcopy(self.model)


def first_positions(group: ChannelGroup) -> list[int]:
    """Position 0 of every division: the smallest removal the group allows."""
    size = group.channels // group.divisions
    return [k * size for k in range(group.divisions)]


def trial_groups(sandbox: Sandbox, groups: Sequence[ChannelGroup],
                 cut: Callable[[nn.Module, Any, dict[str, list[int]]], Any]) -> dict[str, str]:
    """Groups whose smallest cut breaks the model, with the reason (``cut(model, example, removals)``
    applies removals to a sandbox copy). All groups are tried together first, then one by one
    only if that fails."""

    def fails(chosen: Sequence[ChannelGroup]) -> str | None:
        model = sandbox.copy()
        try:
            cut(model, sandbox.example, {g.name: first_positions(g) for g in chosen})
            shapes = output_shapes(model, sandbox.example)
        except Exception as exc:  # noqa: BLE001  (the point of the trial: any failure here is a finding, not a crash)
            return f"cutting it breaks the forward pass ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        if shapes != sandbox.shapes:
            return f"(its channels are a model output: cutting it changes the output shapes {sandbox.shapes} -> {shapes})"
        return None

    candidates = [g for g in groups if g.channels > g.divisions]
    found = {g.name: f"(only {g.channels} channels in {g.divisions} {g.unit})" for g in groups
             if g.channels <= g.divisions}
    if candidates and fails(candidates):
        for group in candidates:
            reason = fails([group])
            if reason:
                # A layer whose outputs a transpose puts on the token axis (an MLP-Mixer's token
                # mixing) is whole by design, like the logits layer: recorded, not warned about.
                found[group.name] = ("(its outputs are transposed onto a non-channel axis)" if group.moved else reason)
    return found
