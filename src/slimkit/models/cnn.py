"""VGG-style CNN: stages of conv3x3-BN-ReLU then max pooling, and a small fully connected head."""

from __future__ import annotations

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


class VGGNet(ZooNet):
    """VGG-style net: ``features.{i}`` = conv/bn/relu[/pool] blocks, ``classifier`` = [fc1,] out."""


@MODELS.register(
    "cnn",
    doc="VGG-style CNN (conv3x3-BN-ReLU stages + max pool, fc head); defaults are the teacher",
    input_sizes=(28, 8),
    params=390_634,
)
def cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    channels: Sequence[int] = (32, 64, 128),
    convs_per_stage: int = 1,
    hidden: int = 256,
    dropout: float = 0.0,
    global_pool: bool = False,
    width: float = 1.0,
) -> nn.Module:
    """Build a VGG-style CNN.

    Each entry of ``channels`` is a stage of ``convs_per_stage`` conv blocks whose last block
    ends in a 2x2 max pool. ``features.{i}`` is one conv block (children ``conv``, ``bn``,
    ``relu`` and, closing a stage, ``pool``). The head flattens (after global average pooling
    when ``global_pool``), then ``fc1`` (``hidden`` units, 0 = none) and ``out``. ``width``
    scales channels and ``hidden``.

    >>> net = cnn(channels=[8, 16], hidden=16)
    >>> sum(p.numel() for p in net.parameters())
    14002
    >>> net.features[1].conv.out_channels, net.classifier.fc1.in_features
    (16, 784)
    """
    w = common("cnn", in_channels, num_classes, input_size, width)
    chans = [scale(c, w) for c in int_tuple("cnn", "channels", channels)]
    repeat = positive_int("cnn", "convs_per_stage", convs_per_stage)
    fc = positive_int("cnn", "hidden", hidden, minimum=0)
    p = fraction("cnn", "dropout", dropout, low=0.0, high=1.0, open_low=False)
    if not isinstance(global_pool, bool):
        raise ConfigError(
            f"model 'cnn': knob 'global_pool' must be true or false, got {global_pool!r}",
            hint="set 'global_pool' to a boolean",
        )
    if input_size >> len(chans) < 1:
        raise ConfigError(
            f"model 'cnn': input_size {input_size} is too small for {len(chans)} pooling stages",
            hint=f"use at most {input_size.bit_length() - 1} entries in 'channels'",
        )
    blocks = []
    fan_in = in_channels
    for out in chans:
        for j in range(repeat):
            blocks.append(conv_bn_relu(fan_in, out, pool=j == repeat - 1))
            fan_in = out
    size = 1 if global_pool else input_size >> len(chans)
    head = classifier_head(
        fan_in * size * size, (scale(fc, w),) if fc else (), num_classes,
        dropout=p, pool=global_pool,
    )
    net = VGGNet(nn.Sequential(*blocks), head)
    init_weights(net)
    return net
