"""VGG-style CNN: stage layout, pooling and the flattened size."""

from __future__ import annotations

import pytest
from torch import nn

from slimkit.errors import ConfigError
from slimkit.models import build_model


def test_convs_per_stage_layout() -> None:
    model = build_model("cnn", channels=[4, 8], convs_per_stage=2, hidden=0)
    assert len(model.features) == 4
    assert [hasattr(b, "pool") for b in model.features] == [False, True, False, True]
    assert [b.conv.out_channels for b in model.features] == [4, 4, 8, 8]
    assert list(dict(model.classifier.named_children())) == ["flatten", "out"]
    assert model.classifier.out.in_features == 8 * 7 * 7


@pytest.mark.parametrize(("size", "flat"), [(28, 128 * 3 * 3), (8, 128)])
def test_teacher_flatten_size(size: int, flat: int) -> None:
    assert build_model("cnn", input_size=size).classifier.fc1.in_features == flat


def test_global_pool_head() -> None:
    model = build_model("cnn", global_pool=True, hidden=0)
    assert isinstance(model.classifier.pool, nn.AdaptiveAvgPool2d)
    assert model.classifier.out.in_features == 128


def test_width_scales_channels_and_hidden() -> None:
    model = build_model("cnn", width=0.5)
    assert [b.conv.out_channels for b in model.features] == [16, 32, 64]
    assert model.classifier.fc1.out_features == 128


def test_too_many_stages_for_input() -> None:
    with pytest.raises(ConfigError, match="input_size 8 is too small for 4 pooling stages"):
        build_model("cnn", input_size=8, channels=[4, 4, 4, 4])
