"""Replace standard kxk convolutions by depthwise-separable blocks (MobileNet-style).

A conv ``W (out x in x k x k)`` becomes ``dw`` (depthwise kxk, the original stride and padding)
then ``bn`` then ``pw`` (1x1, in -> out, the original bias). The block starts as the best
separable approximation of ``W``: for each input channel ``i`` the matrix ``W[:, i]``
(out x k*k) is replaced by its rank-1 SVD, whose right vector becomes the depthwise filter and
whose left vector the pointwise column. ``bn`` starts as the identity, calibrated on a few
training batches when a loader is given, so it is an identity in both train and eval mode.
Accuracy is then recovered by distillation from the original.

Convs with one input channel (image stems) are skipped by default: a depthwise-separable conv
on one channel makes every output channel a scaled copy of one filtered map (rank 1), which
destroys the stem while saving almost nothing, as stems hold a tiny share of the MACs.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import torch
from pydantic import Field
from torch import nn

from slimkit.config import Config, Seed
from slimkit.export.serialize import CHANGES, record_change, record_report
from slimkit.modelio import call, split, to_device
from slimkit.registry import Dispatch
from slimkit.select import select_modules
from slimkit.transform.surgery import CompressionWarning, get_layer, replace_module


class LightenConfig(Config):
    """Which convs to convert (globs), stem handling, and how many batches calibrate the new BatchNorms."""

    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    skip_single_channel: bool = True
    calibration_batches: int = Field(4, ge=0)
    seed: Seed = 0


class DepthwiseSeparable(nn.Sequential):
    """``dw`` (depthwise kxk) -> ``bn`` -> ``pw`` (pointwise 1x1)."""


def separable_shell(conv: nn.Conv2d) -> DepthwiseSeparable:
    """The block's structure for ``conv``, uninitialized."""
    kw = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    return DepthwiseSeparable(OrderedDict(
        dw=nn.Conv2d(conv.in_channels, conv.in_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                     dilation=conv.dilation, groups=conv.in_channels, bias=False, padding_mode=conv.padding_mode, **kw),
        bn=nn.BatchNorm2d(conv.in_channels, **kw),
        pw=nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=conv.bias is not None, **kw),
    ))


def separable_from(conv: nn.Conv2d) -> DepthwiseSeparable:
    """The best per-input-channel rank-1 separable approximation of ``conv``.

    >>> conv = nn.Conv2d(3, 4, 3, padding=1)
    >>> with torch.no_grad():  # a kernel that is exactly separable
    ...     _ = conv.weight.copy_(torch.randn(4, 3, 1, 1) * torch.randn(1, 3, 3, 3))
    >>> x = torch.randn(1, 3, 6, 6)
    >>> torch.allclose(separable_from(conv).eval()(x), conv(x), atol=1e-4)
    True
    """
    block = separable_shell(conv)
    w = conv.weight.detach().double().cpu()
    cout, cin, kh, kw = w.shape
    matrices = w.permute(1, 0, 2, 3).reshape(cin, cout, kh * kw)  # one (out x k*k) matrix per input channel
    from slimkit.evaluate import fixed_threads

    with fixed_threads(1):  # many tiny SVDs: threads only add synchronisation
        u, s, vh = torch.linalg.svd(matrices, full_matrices=False)
    root = s[:, :1].sqrt()
    with torch.no_grad():
        block.dw.weight.copy_((root * vh[:, 0]).reshape(cin, 1, kh, kw).to(block.dw.weight))
        block.pw.weight.copy_((u[:, :, 0] * root).T.reshape(cout, cin, 1, 1).to(block.pw.weight))
        if conv.bias is not None:
            block.pw.bias.copy_(conv.bias)
        block.bn.weight.fill_(float(block.bn.eps + 1.0) ** 0.5)  # eval identity with the fresh stats
    return block


def _calibrate(model: nn.Module, blocks: list[DepthwiseSeparable], loader: Iterable, batches: int) -> None:
    """Set each new BN to the identity on real data: stats of its input, affine that undoes them."""
    sums: dict[int, list[torch.Tensor]] = {id(b): [] for b in blocks}

    def hook_for(block: DepthwiseSeparable):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            sums[id(block)].append(output.detach().transpose(0, 1).flatten(1))
        return hook

    handles = [block.dw.register_forward_hook(hook_for(block)) for block in blocks]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if i >= batches:
                    break
                call(model, to_device(split(batch).inputs, device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    for block in blocks:
        if not sums[id(block)]:
            continue
        values = torch.cat(sums[id(block)], dim=1)
        mean, var = values.mean(1), values.var(1, unbiased=False)
        bn = block.bn
        with torch.no_grad():
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.copy_(mean)


#: ``lighten``'s implementations by config type.
LIGHTEN: Dispatch = Dispatch("lighten")


def lighten(model: nn.Module, config: LightenConfig | None = None, loader: Iterable | None = None) -> nn.Module:
    """Replace the selected standard convs of ``model`` (in place) by depthwise-separable blocks.

    With ``loader`` the new BatchNorms are calibrated on a few batches. Recover accuracy
    afterwards with :func:`slimkit.recover`, distilling from a copy of the model taken before.
    Returns the model; ``report_of(model, "lighten")`` has ``converted`` and ``skipped`` layers
    with reasons; changes are recorded.

    >>> from slimkit.export import report_of
    >>> from slimkit.models import build_model
    >>> net = lighten(build_model("cnn", channels=[4, 8], hidden=0, input_size=8))
    >>> report = report_of(net, "lighten")
    >>> [c["layer"] for c in report["converted"]], report["skipped"][0]["layer"]
    (['features.1.conv'], 'features.0.conv')
    """
    config = config or LightenConfig()
    return LIGHTEN.lookup(config)(model, config, loader)


def _why_not(conv: nn.Conv2d, config: LightenConfig) -> str | None:
    from torch.nn.utils import parametrize

    if conv.groups != 1:
        return f"already grouped/depthwise (groups={conv.groups})"
    if tuple(conv.kernel_size) == (1, 1):
        return "a 1x1 conv is already pointwise"
    if conv.in_channels == 1 and config.skip_single_channel:
        return ("single input channel: a separable conv would make every output a scaled copy of one "
                "filtered map (set skip_single_channel=False to convert anyway)")
    if parametrize.is_parametrized(conv):
        return "its weight is parametrized (shared or masked): lighten first, or bake() it"
    return None


@LIGHTEN.register(LightenConfig)
def _separable(model: nn.Module, config: LightenConfig, loader: Iterable | None) -> nn.Module:
    report: dict[str, list[dict[str, Any]]] = {"converted": [], "skipped": []}
    planned = []
    for name, conv in select_modules(model, config.include, exclude=config.exclude, types=(nn.Conv2d,)).items():
        reason = _why_not(conv, config)
        if reason:
            report["skipped"].append({"layer": name, "reason": reason})
            continue
        planned.append((name, conv, separable_from(conv)))
    for name, conv, block in planned:  # every block is built before the model changes
        replace_module(model, name, block)
        record_change(model, "lighten", layer=name)
        report["converted"].append({"layer": name, "params_before": sum(p.numel() for p in conv.parameters()),
                                    "params_after": sum(p.numel() for p in block.parameters())})
    blocks = [block for _, _, block in planned]
    if loader is not None and blocks and config.calibration_batches:
        _calibrate(model, blocks, loader, config.calibration_batches)
    if not blocks:
        why = "; ".join(f"{s['layer']}: {s['reason']}" for s in report["skipped"][:3]) or "no Conv2d was selected"
        warnings.warn(f"lighten converted no conv of {type(model).__name__}; the model is unchanged ({why})",
                      CompressionWarning, stacklevel=3)
    record_report(model, "lighten", report)
    return model


def replay_lighten(model: nn.Module, change: dict[str, Any]) -> nn.Module:
    """Rebuild a recorded conversion's structure (weights come from the saved file)."""
    replace_module(model, change["layer"], separable_shell(get_layer(model, change["layer"])))
    return model


CHANGES.add("lighten", replay_lighten)
