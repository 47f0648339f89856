"""Small model-surgery helpers shared by factorization, weight sharing and transforms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from slimkit.errors import ConfigError, ModelError


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


def example_input(model: nn.Module, given: Tensor | None = None) -> Tensor | None:
    """``given``, else a zero batch of one built from the model's spec (registry models know their
    ``in_channels`` and ``input_size``), else None.

    >>> from slimkit.models import build_model
    >>> example_input(build_model("lenet5", input_size=8)).shape
    torch.Size([1, 1, 8, 8])
    """
    if given is not None:
        return given
    kwargs = (getattr(model, "slimkit_spec", None) or {}).get("kwargs", {})
    if "in_channels" in kwargs and "input_size" in kwargs:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        return torch.zeros(1, kwargs["in_channels"], kwargs["input_size"], kwargs["input_size"], device=device)
    return None


def require_input(model: nn.Module, given: Tensor | None, why: str) -> Tensor:
    """Like :func:`example_input`, but a ConfigError saying ``why`` one is needed when there is none."""
    found = example_input(model, given)
    if found is None:
        raise ConfigError(f"{why} needs example_inputs: {type(model).__name__} is not a registry model",
                          hint="pass example_inputs=torch.zeros(1, C, H, W) shaped like one input")
    return found


@dataclass(frozen=True)
class Geometry:
    """Shapes a layer sees on one sample: input and output spatial size (convs) and the number
    of positions a Linear is applied at (1 for a plain batch of vectors)."""

    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)
    positions: int = 1


def layer_geometry(model: nn.Module, names: list[str], inputs: Tensor | None) -> dict[str, Geometry]:
    """Run ``inputs[:1]`` through the model once and record each named layer's geometry.

    Without inputs every geometry is the default (MACs then equal parameter-ish counts).
    """
    if inputs is None:
        return {n: Geometry() for n in names}
    found: dict[str, Geometry] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            x = args[0]
            if isinstance(module, nn.Conv2d):
                found[name] = Geometry(tuple(x.shape[-2:]), tuple(output.shape[-2:]), output.shape[-2] * output.shape[-1])
            else:
                found[name] = Geometry(positions=max(1, output[:1].numel() // output.shape[-1]))
        return hook

    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(hook_for(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: found.get(n, Geometry()) for n in names}
