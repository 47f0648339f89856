"""LeNet-5 (conv 6-16, fc 120-84) with ReLU and max pooling, for 28x28 and 8x8 inputs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from slimkit.errors import ConfigError
from slimkit.models._blocks import ZooNet, classifier_head, common, int_tuple, scale
from slimkit.models._registry import MODELS


class LeNet5(ZooNet):
    """LeNet-5: ``features.{i}`` = conv5x5/relu/pool stages, ``classifier`` = fc1, fc2, out."""


def _padding(stage: int, size: int) -> int:
    # The first conv pads like LeNet on 28x28 MNIST (as if the input were 32x32). Later convs
    # pad only when a valid 5x5 conv would leave less than a 2x2 map to pool, which is what lets
    # the same net run on 8x8 digits.
    return 2 if stage == 0 or size - 4 < 2 else 0


@MODELS.register(
    "lenet5",
    doc="LeNet-5: conv5x5 6-16 with max pooling, fc 120-84 (ReLU, no BN as in the original)",
    input_sizes=(28, 8),
    params=61_706,
)
def lenet5(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    channels: Sequence[int] = (6, 16),
    hidden: Sequence[int] = (120, 84),
    width: float = 1.0,
) -> nn.Module:
    """Build LeNet-5. Depth is ``len(channels)`` and ``len(hidden)``; ``width`` scales both.

    >>> net = lenet5()
    >>> net.classifier.fc1.in_features  # 16 maps of 5x5, as in the paper
    400
    >>> lenet5(input_size=8).classifier.fc1.in_features
    64
    """
    w = common("lenet5", in_channels, num_classes, input_size, width)
    chans = [scale(c, w) for c in int_tuple("lenet5", "channels", channels)]
    sizes = [scale(h, w) for h in int_tuple("lenet5", "hidden", hidden, allow_empty=True)]
    stages = []
    size, fan_in = input_size, in_channels
    for i, out in enumerate(chans):
        pad = _padding(i, size)
        size = (size + 2 * pad - 4) // 2
        if size < 1:
            raise ConfigError(
                f"model 'lenet5': input_size {input_size} is too small for {len(chans)} conv stages",
                hint="use fewer 'channels' or a larger input_size",
            )
        stages.append(nn.Sequential(OrderedDict(
            conv=nn.Conv2d(fan_in, out, 5, padding=pad), relu=nn.ReLU(), pool=nn.MaxPool2d(2),
        )))
        fan_in = out
    head = classifier_head(fan_in * size * size, sizes, num_classes)
    return LeNet5(nn.Sequential(*stages), head)
