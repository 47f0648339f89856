"""MobileNet: depthwise-separable blocks, strides and width multiplier."""

from __future__ import annotations

import pytest

from slimkit.errors import ConfigError
from slimkit.models import build_model


def test_blocks_are_depthwise_then_pointwise() -> None:
    model = build_model("mobilenet")
    for block in model.features[1:]:
        assert block.dw.conv.groups == block.dw.conv.in_channels == block.dw.conv.out_channels
        assert block.pw.conv.kernel_size == (1, 1)
    assert [b.dw.conv.stride[0] for b in model.features[1:]] == [1, 2, 1, 2, 1]


def test_width_multiplier() -> None:
    model = build_model("mobilenet", width=0.5)
    assert model.features[0].conv.out_channels == 8
    assert [b.pw.conv.out_channels for b in model.features[1:]] == [16, 32, 32, 64, 64]


def test_strides_must_match_channels() -> None:
    with pytest.raises(ConfigError, match=r"'strides' \[1\] must hold one 1 or 2 per entry"):
        build_model("mobilenet", channels=[8, 16], strides=[1])
    with pytest.raises(ConfigError, match="'strides'"):
        build_model("mobilenet", channels=[8], strides=[3])
