"""Small model-surgery helpers shared by factorization, weight sharing and transforms."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError
from slimkit.modelio import call, example_for, take


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``, or ModelError naming it (a reloaded history may not fit)."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ModelError(f"{type(model).__name__} has no layer '{name}'",
                         hint="the model's structure differs from the one the change was recorded on") from None


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` is (``"features.1.conv"``).

    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> replace_module(net, "0", nn.Identity())
    >>> net
    Sequential(
      (0): Identity()
    )
    """
    get_layer(model, name)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def restore(model: nn.Module, snapshot: nn.Module) -> None:
    """Make ``model`` (the caller's object) what ``snapshot``, a deep copy taken before a change,
    was: for verbs that change a model in place and must leave it as it was when they fail.

    >>> import copy
    >>> net = nn.Linear(2, 2)
    >>> before = copy.deepcopy(net)
    >>> with torch.no_grad():
    ...     _ = net.weight.zero_()
    >>> restore(net, before)
    >>> torch.equal(net.weight, before.weight)
    True
    """
    # A module's whole state is its __dict__ (parameters, buffers, children, hooks, attributes)
    # and its class (parametrizations swap the class of the module they change).
    model.__class__ = snapshot.__class__
    model.__dict__.clear()
    model.__dict__.update(snapshot.__dict__)


class CompressionWarning(UserWarning):
    """A compression verb did less than it was asked to (a target missed, nothing to change)."""


def example_input(model: nn.Module, given: Any = None, loader: Iterable[Any] | None = None) -> Any:
    """``given``; else one zero sample from the inputs the model recorded (``slimkit_inputs``:
    registry models record theirs); else one sample of ``loader``; else None. Model inputs as
    :mod:`slimkit.modelio` reads them (a tensor, a tuple or a mapping of tensors).

    >>> from slimkit.models import build_model
    >>> example_input(build_model("lenet5", input_size=8)).shape
    torch.Size([1, 1, 8, 8])
    """
    return example_for(model, given, loader, n=1)


def require_input(model: nn.Module, given: Any, why: str, loader: Iterable[Any] | None = None) -> Any:
    """Like :func:`example_input`, but a ConfigError saying ``why`` one is needed when there is none."""
    found = example_input(model, given, loader)
    if found is None:
        raise ConfigError(f"{why} needs example_inputs: {type(model).__name__} recorded no input spec",
                          hint="pass example_inputs=... shaped like one input batch (a tensor, tuple or dict), "
                               "or a loader")
    return found


@dataclass(frozen=True)
class Geometry:
    """Shapes a layer sees on one sample: input and output spatial size (convs) and the number
    of positions a Linear is applied at (1 for a plain batch of vectors)."""

    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    positions: int = 1


def trace_layers(model: nn.Module, names: list[str], inputs: Any) -> dict[str, Geometry]:
    """Run one sample of ``inputs`` through the model (eval mode, no gradients) and record the
    geometry of each named layer *that ran as a module*; a layer missing from the result did not
    run (unused, or its parent reads its weights directly, as ``nn.MultiheadAttention`` does)."""
    found: dict[str, Geometry] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            x = args[0] if args else None
            if not isinstance(output, Tensor) or not isinstance(x, Tensor):
                found[name] = Geometry()
            elif isinstance(module, nn.Conv2d):
                found[name] = Geometry(tuple(x.shape[-2:]), tuple(output.shape[-2:]), output.shape[-2] * output.shape[-1])
            else:
                found[name] = Geometry(positions=max(1, output[:1].numel() // max(1, output.shape[-1])))
        return hook

    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            call(model, take(inputs, 1))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return found


def layer_geometry(model: nn.Module, names: list[str], inputs: Any) -> dict[str, Geometry]:
    """Run one sample of ``inputs`` through the model once and record each named layer's geometry.

    Without inputs, or for a layer that did not run, the geometry is the default (MACs then equal
    parameter-ish counts).
    """
    found = trace_layers(model, names, inputs) if inputs is not None else {}
    return {n: found.get(n, Geometry()) for n in names}
