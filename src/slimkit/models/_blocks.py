"""Building blocks and knob checks shared by the model zoo.

Blocks are ``nn.Sequential`` with named children (``conv``, ``bn``, ``relu``, ``pool``) so that
layer selection by glob (``"features.*.conv"``) reads naturally and stays stable.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from slimkit.errors import ConfigError


class ZooNet(nn.Module):
    """A model made of ``features`` (stages/blocks) followed by ``classifier`` (the head).

    >>> import torch
    >>> net = ZooNet(nn.Sequential(nn.Conv2d(1, 2, 3)), classifier_head(2, (), 3, pool=True))
    >>> net(torch.zeros(1, 1, 8, 8)).shape
    torch.Size([1, 3])
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    stride: int = 1,
    groups: int = 1,
    pool: bool = False,
) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BN -> ReLU [-> MaxPool 2x2], children named conv/bn/relu/pool.

    >>> [name for name, _ in conv_bn_relu(1, 4, pool=True).named_children()]
    ['conv', 'bn', 'relu', 'pool']
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["conv"] = nn.Conv2d(
        in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
        groups=groups, bias=False,
    )
    layers["bn"] = nn.BatchNorm2d(out_channels)
    # Not in-place: distillation hooks keep references to BN outputs, which an in-place ReLU
    # would overwrite.
    layers["relu"] = nn.ReLU()
    if pool:
        layers["pool"] = nn.MaxPool2d(2)
    return nn.Sequential(layers)


def classifier_head(
    in_features: int,
    hidden: Sequence[int],
    num_classes: int,
    *,
    dropout: float = 0.0,
    pool: bool = False,
    flatten: bool = True,
) -> nn.Sequential:
    """``[pool] -> flatten -> (fcI -> reluI [-> dropI])* [-> drop] -> out``.

    ``pool`` adds global average pooling first. The logits layer is always named ``out``.

    >>> [name for name, _ in classifier_head(16, (8,), 10, dropout=0.5).named_children()]
    ['flatten', 'fc1', 'relu1', 'drop1', 'out']
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if pool:
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
    if flatten:
        layers["flatten"] = nn.Flatten()
    width = in_features
    for i, size in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, size)
        layers[f"relu{i}"] = nn.ReLU()
        if dropout > 0:
            layers[f"drop{i}"] = nn.Dropout(dropout)
        width = size
    if dropout > 0 and not hidden:
        layers["drop"] = nn.Dropout(dropout)
    layers["out"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


def init_weights(model: nn.Module) -> None:
    """He-normal init for convs feeding ReLUs (torch's default is tuned for no activation)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


# --- knob checks: every message names the model and the knob ---------------------------------


def _fail(model: str, knob: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"model '{model}': knob '{knob}' must be {expected}, got {value!r}",
        hint=f"fix '{knob}' in the model kwargs (see slimkit.models.model_knobs('{model}'))",
    )


def positive_int(model: str, knob: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise ConfigError naming model and knob."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(model, knob, f"an int >= {minimum}", value)
    return value


def int_tuple(model: str, knob: str, value: Any, *, allow_empty: bool = False) -> tuple[int, ...]:
    """Accept a list or tuple of positive ints (JSON gives lists) and return a tuple.

    >>> int_tuple("cnn", "channels", [8, 16])
    (8, 16)
    """
    expected = "a list of positive ints" + ("" if allow_empty else " (at least one)")
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(model, knob, expected, value)
    items = tuple(value)
    bad = any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items)
    if bad or (not items and not allow_empty):
        raise _fail(model, knob, expected, value)
    return items


def fraction(model: str, knob: str, value: Any, *, low: float, high: float, open_low: bool) -> float:
    """Return ``value`` as a float in ``(low, high]`` (``open_low``) or ``[low, high)``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (low < value <= high) if open_low else (low <= value < high)
    if not ok:
        bounds = f"in ({low}, {high}]" if open_low else f"in [{low}, {high})"
        raise _fail(model, knob, f"a number {bounds}", value)
    return float(value)


def scale(channels: int, width: float) -> int:
    """Scale a channel count by a width multiplier, keeping at least one channel.

    >>> scale(32, 0.25), scale(6, 0.1)
    (8, 1)
    """
    return max(1, round(channels * width))


def common(model: str, in_channels: Any, num_classes: Any, input_size: Any, width: Any) -> float:
    """Check the knobs every factory shares; return the width multiplier as a float."""
    positive_int(model, "in_channels", in_channels)
    positive_int(model, "num_classes", num_classes)
    positive_int(model, "input_size", input_size)
    return fraction(model, "width", width, low=0.0, high=16.0, open_low=True)
