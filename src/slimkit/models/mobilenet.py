"""MobileNet-style net of depthwise-separable blocks, sized for 28x28 and 8x8 inputs."""

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
    positive_int,
    scale,
)
from slimkit.models._registry import MODELS


class MobileNet(ZooNet):
    """``features.0`` stem, ``features.{i}`` = ``dw`` (depthwise 3x3) + ``pw`` (pointwise 1x1)."""


def separable(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Depthwise conv3x3-BN-ReLU (``dw``) then pointwise conv1x1-BN-ReLU (``pw``).

    >>> block = separable(8, 16, 2)
    >>> block.dw.conv.groups, block.pw.conv.kernel_size
    (8, (1, 1))
    """
    return nn.Sequential(OrderedDict(
        dw=conv_bn_relu(in_channels, in_channels, stride=stride, groups=in_channels),
        pw=conv_bn_relu(in_channels, out_channels, kernel_size=1),
    ))


@MODELS.register(
    "mobilenet",
    doc="MobileNet-v1 style: conv3x3 stem then depthwise-separable blocks, global avg pool",
    input_sizes=(28, 8),
    params=36_874,
)
def mobilenet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    stem_channels: int = 16,
    channels: Sequence[int] = (32, 64, 64, 128, 128),
    strides: Sequence[int] = (1, 2, 1, 2, 1),
    dropout: float = 0.0,
    width: float = 1.0,
) -> nn.Module:
    """Build a MobileNet. One separable block per entry of ``channels`` (and ``strides``).

    ``width`` is the usual width multiplier: it scales the stem and every block.

    >>> net = mobilenet(channels=[16, 32], strides=[2, 2])
    >>> len(net.features), net.features[2].pw.conv.out_channels
    (3, 32)
    """
    w = common("mobilenet", in_channels, num_classes, input_size, width)
    stem = scale(positive_int("mobilenet", "stem_channels", stem_channels), w)
    chans = [scale(c, w) for c in int_tuple("mobilenet", "channels", channels)]
    steps = int_tuple("mobilenet", "strides", strides)
    p = fraction("mobilenet", "dropout", dropout, low=0.0, high=1.0, open_low=False)
    if len(steps) != len(chans) or any(s > 2 for s in steps):
        raise ConfigError(
            f"model 'mobilenet': 'strides' {list(steps)} must hold one 1 or 2 per entry of "
            f"'channels' {list(channels)}",
            hint="give 'strides' the same length as 'channels', using only 1 and 2",
        )
    blocks: list[nn.Module] = [conv_bn_relu(in_channels, stem)]
    fan_in = stem
    for out, stride in zip(chans, steps):
        blocks.append(separable(fan_in, out, stride))
        fan_in = out
    head = classifier_head(fan_in, (), num_classes, dropout=p, pool=True)
    net = MobileNet(nn.Sequential(*blocks), head)
    init_weights(net)
    return net
