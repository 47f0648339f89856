"""Fold BatchNorm into the Conv or Linear before it (and optionally pair the ReLU after it).

In eval mode BN is an affine map per channel, so ``bn(conv(x)) == conv'(x)`` with
``w' = w * g / sqrt(var + eps)`` and ``b' = (b - mean) * g / sqrt(var + eps) + beta``: one pass
over memory less per layer, identical outputs up to rounding. The running statistics are used,
so fuse a trained model. Pairs are found on the torch.fx graph (which follows the real data flow,
e.g. inside ResNet blocks); models fx cannot trace fall back to consecutive children of
``nn.Sequential`` containers.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from slimkit.config import Config
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.registry import Dispatch
from slimkit.select import select_modules
from slimkit.transform.surgery import get_layer, replace_module

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FuseConfig(Config):
    """Which layers to fuse (globs on the conv/linear names) and whether to pair ReLUs.

    ``relu=True`` also wraps each fused layer with the ReLU right after it in
    ``torch.ao.nn.intrinsic`` ConvReLU/LinearReLU modules, the form eager-mode quantization
    expects; in float it changes neither the numbers nor the speed, so it is off by default.
    """

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    relu: bool = False


@dataclass
class FuseReport:
    """The fused (layer, norm, relu-or-None) triples, the pairs left alone with why (``skipped``),
    and how the pairs were found (``found_by``: the fx graph, or the order of ``nn.Sequential``
    children when fx cannot trace the model)."""

    fused: list[list[Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    found_by: str = "fx"


def _single_user_module(node: Any, modules: dict[str, nn.Module], kinds: tuple) -> Any:
    users = list(node.users)
    if len(users) == 1 and users[0].op == "call_module" and isinstance(modules.get(users[0].target), kinds):
        return users[0]
    return None


def _pairs_fx(model: nn.Module) -> list[list[str | None]]:
    import torch.fx

    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    found = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _LAYERS):
            continue
        norm = _single_user_module(node, modules, _NORMS)
        if norm is None:
            continue
        relu = _single_user_module(norm, modules, (nn.ReLU,))
        found.append([node.target, norm.target, relu.target if relu is not None else None])
    return found


def _pairs_sequential(model: nn.Module) -> list[list[str | None]]:
    found = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for i in range(len(names) - 1):
            a, b = module._modules[names[i]], module._modules[names[i + 1]]
            if isinstance(a, _LAYERS) and isinstance(b, _NORMS):
                c = module._modules[names[i + 2]] if i + 2 < len(names) else None
                full = [f"{prefix}.{n}" if prefix else n for n in names[i:i + 3]]
                found.append([full[0], full[1], full[2] if isinstance(c, nn.ReLU) else None])
    return found


def find_fusable(model: nn.Module) -> list[list[str | None]]:
    """``[layer, norm, relu-or-None]`` name triples where a Conv/Linear feeds only a BN."""
    return _find(model)[0]


def _find(model: nn.Module) -> tuple[list[list[str | None]], str]:
    try:
        return _pairs_fx(model), "fx"
    except Exception as exc:  # noqa: BLE001  (fx fails variously on data-dependent control flow; Sequential order is safe)
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return _pairs_sequential(model), f"nn.Sequential order (fx could not trace the model: {reason})"


def _why_not(layer: nn.Module, norm: nn.Module) -> str | None:
    """Why ``norm`` cannot be folded into ``layer``, or None."""
    from torch.nn.utils import parametrize

    width = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if not (norm.track_running_stats and norm.running_mean is not None):
        return "the norm keeps no running statistics (it normalizes each batch by its own)"
    if norm.num_features != width:
        return f"the norm has {norm.num_features} features, the layer {width} outputs"
    if parametrize.is_parametrized(layer):
        return "the layer's weight is parametrized (shared or masked): fuse first, or bake() it"
    return None


def _with_bias(layer: nn.Module) -> nn.Module:
    new = copy.deepcopy(layer)
    if new.bias is None:
        width = new.weight.shape[0]
        new.bias = nn.Parameter(torch.zeros(width, device=new.weight.device, dtype=new.weight.dtype))
    return new


def _wrap_relu(layer: nn.Module, relu: nn.Module) -> nn.Module:
    from torch.ao.nn import intrinsic

    kinds = {nn.Conv1d: intrinsic.ConvReLU1d, nn.Conv2d: intrinsic.ConvReLU2d, nn.Conv3d: intrinsic.ConvReLU3d,
             nn.Linear: intrinsic.LinearReLU}
    return kinds[type(layer)](layer, relu)


def _fused_layer(model: nn.Module, triple: list[str | None], relu: bool, *, weights: bool) -> nn.Module:
    """The layer of ``triple`` with its norm folded in (and the ReLU wrapped in, with ``relu``)."""
    layer_name, norm_name, relu_name = triple
    layer, norm = get_layer(model, layer_name), get_layer(model, norm_name)
    new = _with_bias(layer)
    if weights:
        fuse = fuse_linear_bn_weights if isinstance(layer, nn.Linear) else fuse_conv_bn_weights
        bias = layer.bias if layer.bias is not None else torch.zeros_like(norm.running_mean)
        w, b = fuse(layer.weight.detach(), bias.detach(), norm.running_mean, norm.running_var, norm.eps,
                    norm.weight if norm.affine else torch.ones_like(norm.running_mean),
                    norm.bias if norm.affine else torch.zeros_like(norm.running_mean))
        new.weight, new.bias = nn.Parameter(w.detach()), nn.Parameter(b.detach())
    if relu and relu_name is not None:
        new = _wrap_relu(new, get_layer(model, relu_name))
    return new


def _swap(model: nn.Module, triple: list[str | None], new: nn.Module, relu: bool) -> None:
    layer_name, norm_name, relu_name = triple
    replace_module(model, norm_name, nn.Identity())
    if relu and relu_name is not None:
        replace_module(model, relu_name, nn.Identity())
    replace_module(model, layer_name, new)


#: ``fuse``'s implementations by config type.
FUSE: Dispatch = Dispatch("fuse")


def fuse(model: nn.Module, config: FuseConfig | None = None, loader: Any = None) -> nn.Module:
    """Fold every BatchNorm that directly follows a selected Conv/Linear into it (in place).

    The BN (and, with ``relu=True``, the ReLU) becomes ``nn.Identity`` so module names stay
    stable. Returns the model; ``report_of(model, "fuse")["fused"]`` lists the fused
    (layer, norm, relu) triples; the change is recorded for reloading. ``loader`` is not used:
    fusion needs no data.

    >>> from slimkit.models import build_model
    >>> net = build_model("cnn", channels=[4], hidden=0, input_size=8).eval()
    >>> x = torch.randn(2, 1, 8, 8)
    >>> before = net(x)
    >>> fused = fuse(net)
    >>> from slimkit.export import report_of
    >>> report_of(fused, "fuse")["fused"], bool((fused(x) - before).abs().max() < 1e-5)
    ([['features.0.conv', 'features.0.bn', None]], True)
    """
    config = config or FuseConfig()
    return FUSE.lookup(config)(model, config)


@FUSE.register(FuseConfig)
def _fold_batchnorm(model: nn.Module, config: FuseConfig) -> nn.Module:
    allowed = set(select_modules(model, config.include, exclude=config.exclude, types=_LAYERS))
    triples, found_by = _find(model)
    report = FuseReport(found_by=found_by)
    planned = []
    for triple in triples:
        layer, norm = get_layer(model, triple[0]), get_layer(model, triple[1])
        reason = "not selected (include/exclude)" if triple[0] not in allowed else _why_not(layer, norm)
        if reason:
            report.skipped.append({"layer": triple[0], "norm": triple[1], "reason": reason})
            continue
        triple = [triple[0], triple[1], triple[2] if config.relu else None]
        planned.append((triple, _fused_layer(model, triple, config.relu, weights=True)))
    for triple, new in planned:  # every fused layer is built before the model changes
        _swap(model, triple, new, config.relu)
        report.fused.append(triple)
    if report.fused:
        record_change(model, "fuse", pairs=report.fused, relu=config.relu)
    record_report(model, "fuse", asdict(report))
    return model


def replay_fuse(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Rebuild a recorded fusion's structure (the fused weights come from the saved file)."""
    relu = bool(change.get("relu"))
    for triple in change["pairs"]:
        _swap(model, list(triple), _fused_layer(model, list(triple), relu, weights=False), relu)
    return model


CHANGES.add("fuse", replay_fuse)
