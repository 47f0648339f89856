"""``searchnet``: the model family student search explores (``slimkit.search`` builds its spaces on it).

The zoo's ``cnn`` has neither a kernel-size nor a depthwise knob, so search gets its own small
builder. Every stage has its own width, depth (conv blocks), kernel size and conv type
(standard, or depthwise-separable: a depthwise kxk then a pointwise 1x1), and ends in a 2x2 max
pool. The first block of the net is always a standard conv: a depthwise conv over one input
channel is a single filter. With the defaults it *is* the default student
(``cnn(channels=[8, 16], hidden=16)``: same layers, same 14,002 parameters), so that student
is a point of every search space built on it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import (
    ZooNet,
    classifier_head,
    common,
    conv_bn_relu,
    fraction,
    init_weights,
    int_tuple,
    scale,
)
from slimkit.models._registry import MODELS

__all__ = ["SearchNet", "searchnet", "separable_block"]


class SearchNet(ZooNet):
    """``features.{i}``: a standard block (conv/bn/relu[/pool]) or a separable one (dw/pw[/pool])."""


def separable_block(in_channels: int, out_channels: int, kernel_size: int, *, pool: bool) -> nn.Sequential:
    """Depthwise kxk conv-BN-ReLU (``dw``), pointwise 1x1 conv-BN-ReLU (``pw``) [, 2x2 max ``pool``].

    >>> block = separable_block(8, 16, 5, pool=True)
    >>> block.dw.conv.groups, block.dw.conv.kernel_size, block.pw.conv.out_channels, hasattr(block, "pool")
    (8, (5, 5), 16, True)
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        dw=conv_bn_relu(in_channels, in_channels, kernel_size=kernel_size, groups=in_channels),
        pw=conv_bn_relu(in_channels, out_channels, kernel_size=1),
    )
    if pool:
        layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


def _flags(value: object, count: int) -> tuple[bool, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != count \
            or not all(isinstance(v, bool) for v in value):
        raise ConfigError(
            f"model 'searchnet': knob 'separable' must be a list of {count} booleans (one per stage), got {value!r}",
            hint="e.g. separable: [false, true]",
        )
    return tuple(value)  # type: ignore[arg-type]


@MODELS.register(
    "searchnet",
    doc="searchable CNN: per-stage width, depth, kernel size and standard or depthwise-separable convs",
    input_sizes=(28, 8),
    params=14_002,
)
def searchnet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    widths: Sequence[int] = (8, 16),
    depths: Sequence[int] = (1, 1),
    kernels: Sequence[int] = (3, 3),
    separable: Sequence[bool] = (False, False),
    hidden: int = 16,
    global_pool: bool = False,
    dropout: float = 0.0,
    width: float = 1.0,
) -> nn.Module:
    """Build a searchnet: one stage per entry of ``widths`` (``depths``, ``kernels`` and
    ``separable`` give one value per stage). ``hidden`` = 0 drops the hidden fc layer; ``width``
    multiplies every stage width and ``hidden``.

    >>> net = searchnet()
    >>> sum(p.numel() for p in net.parameters())
    14002
    >>> net = searchnet(widths=[8, 24], depths=[1, 2], kernels=[3, 5], separable=[False, True], hidden=0)
    >>> len(net.features), net.features[2].dw.conv.kernel_size, net.classifier.out.in_features
    (3, (5, 5), 1176)
    """
    w = common("searchnet", in_channels, num_classes, input_size, width)
    chans = tuple(scale(c, w) for c in int_tuple("searchnet", "widths", widths))
    per_stage = {"depths": int_tuple("searchnet", "depths", depths), "kernels": int_tuple("searchnet", "kernels", kernels)}
    for knob, values in per_stage.items():
        if len(values) != len(chans):
            raise ConfigError(
                f"model 'searchnet': knob '{knob}' has {len(values)} entries but 'widths' has {len(chans)} stages",
                hint=f"give '{knob}' one value per stage",
            )
    if any(k % 2 == 0 for k in per_stage["kernels"]):
        raise ConfigError(f"model 'searchnet': kernels must be odd (same padding), got {list(kernels)}",
                          hint="use kernel sizes such as 3, 5 or 7")
    sep = _flags(separable, len(chans))
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 0:
        raise ConfigError(f"model 'searchnet': knob 'hidden' must be an int >= 0, got {hidden!r}",
                          hint="0 means no hidden fc layer")
    if input_size >> len(chans) < 1:
        raise ConfigError(f"model 'searchnet': input_size {input_size} is too small for {len(chans)} pooling stages",
                          hint=f"use at most {input_size.bit_length() - 1} stages")
    p = fraction("searchnet", "dropout", dropout, low=0.0, high=1.0, open_low=False)
    blocks: list[nn.Module] = []
    fan_in = in_channels
    for out, depth, kernel, is_sep in zip(chans, per_stage["depths"], per_stage["kernels"], sep):
        for j in range(depth):
            pool = j == depth - 1
            if is_sep and blocks:  # the net's first conv stays standard (see the module docstring)
                blocks.append(separable_block(fan_in, out, kernel, pool=pool))
            else:
                blocks.append(conv_bn_relu(fan_in, out, kernel_size=kernel, pool=pool))
            fan_in = out
    size = 1 if global_pool else input_size >> len(chans)
    head = classifier_head(fan_in * size * size, (scale(hidden, w),) if hidden else (), num_classes, dropout=p, pool=global_pool)
    net = SearchNet(nn.Sequential(*blocks), head)
    init_weights(net)
    return net
