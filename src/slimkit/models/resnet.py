"""CIFAR-style ResNet (depth 6n+2: 8, 14, 20, 32, ...) for small grey-scale images."""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import (
    ZooNet,
    classifier_head,
    common,
    conv_bn_relu,
    fraction,
    init_weights,
    positive_int,
    scale,
)
from slimkit.models._registry import MODELS


class BasicBlock(nn.Module):
    """conv1/bn1/relu1 -> conv2/bn2, plus ``shortcut`` (identity or 1x1 conv + BN), then ``relu``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # A 1x1 projection (option B) rather than zero-padding (option A): every channel change is
        # then a layer that pruning and export can see.
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                bn=nn.BatchNorm2d(out_channels),
            ))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        # A real add (not in-place): structured pruning must keep both branches' channels in step.
        return self.relu(out + self.shortcut(x))


class ResNet(ZooNet):
    """``features.0`` stem, ``features.1..3`` stages of BasicBlocks, ``classifier`` pool/flatten/out."""


@MODELS.register(
    "resnet",
    doc="CIFAR-style ResNet, depth 6n+2 (default 20), 3 stages of BasicBlocks, global avg pool",
    input_sizes=(28, 8),
    params=272_186,
)
def resnet(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    depth: int = 20,
    base_channels: int = 16,
    dropout: float = 0.0,
    width: float = 1.0,
) -> nn.Module:
    """Build a ResNet-``depth`` with stages of ``base_channels`` x (1, 2, 4), strides (1, 2, 2).

    ``width`` multiplies ``base_channels``. Blocks are ``features.{stage}.{block}`` with
    ``conv1``, ``bn1``, ``conv2``, ``bn2`` and ``shortcut``.

    >>> net = resnet(depth=8)
    >>> len(net.features), len(net.features[1])
    (4, 1)
    >>> resnet(depth=21)
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: model 'resnet': depth must be 6n+2 (8, 14, 20, 32, 44, 56), got 21
      hint: pick one of 8, 14, 20, 32, 44, 56
    """
    w = common("resnet", in_channels, num_classes, input_size, width)
    positive_int("resnet", "depth", depth)
    base = scale(positive_int("resnet", "base_channels", base_channels), w)
    p = fraction("resnet", "dropout", dropout, low=0.0, high=1.0, open_low=False)
    if depth < 8 or (depth - 2) % 6:
        valid = "8, 14, 20, 32, 44, 56"
        raise ConfigError(
            f"model 'resnet': depth must be 6n+2 ({valid}), got {depth}",
            hint=f"pick one of {valid}",
        )
    n = (depth - 2) // 6
    stages: list[nn.Module] = [conv_bn_relu(in_channels, base)]
    fan_in = base
    for i, stride in enumerate((1, 2, 2)):
        out = base * 2**i
        blocks = []
        for j in range(n):
            blocks.append(BasicBlock(fan_in, out, stride if j == 0 else 1))
            fan_in = out
        stages.append(nn.Sequential(*blocks))
    head = classifier_head(fan_in, (), num_classes, dropout=p, pool=True)
    net = ResNet(nn.Sequential(*stages), head)
    init_weights(net)
    return net
