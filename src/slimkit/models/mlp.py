"""Multi-layer perceptron: LeNet-300-100, Hinton's 1200-1200 and 800-800 nets, and any other sizes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from slimkit.models._blocks import classifier_head, common, fraction, int_tuple, scale
from slimkit.models._registry import MODELS


class MLP(nn.Module):
    """``flatten`` -> ``features`` (blocks ``fc``/``relu``/``drop``) -> ``classifier.out``."""

    def __init__(self, flatten: nn.Flatten, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.flatten = flatten
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.flatten(x)))


@MODELS.register(
    "mlp",
    doc="fully connected net; hidden=(300, 100) is LeNet-300-100, (1200, 1200) Hinton's teacher",
    input_sizes=(28, 8),
    params=266_610,
)
def mlp(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
    hidden: Sequence[int] = (300, 100),
    dropout: float = 0.0,
    width: float = 1.0,
) -> nn.Module:
    """Build an MLP. Depth is ``len(hidden)``; ``width`` scales every hidden size.

    Blocks are ``features.{i}.fc`` / ``.relu`` / ``.drop``; logits come from ``classifier.out``.

    >>> net = mlp(hidden=[800, 800], dropout=0.2)
    >>> net.features[1].fc.out_features, net.classifier.out.in_features
    (800, 800)
    """
    w = common("mlp", in_channels, num_classes, input_size, width)
    sizes = [scale(h, w) for h in int_tuple("mlp", "hidden", hidden, allow_empty=True)]
    p = fraction("mlp", "dropout", dropout, low=0.0, high=1.0, open_low=False)
    blocks = []
    fan_in = in_channels * input_size * input_size
    for size in sizes:
        block: OrderedDict[str, nn.Module] = OrderedDict(fc=nn.Linear(fan_in, size), relu=nn.ReLU())
        if p > 0:
            block["drop"] = nn.Dropout(p)
        blocks.append(nn.Sequential(block))
        fan_in = size
    head = classifier_head(fan_in, (), num_classes, flatten=False)
    return MLP(nn.Flatten(), nn.Sequential(*blocks), head)
