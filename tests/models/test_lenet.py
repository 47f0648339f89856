"""LeNet-5: the classic shapes on 28x28, padding that makes 8x8 work."""

from __future__ import annotations

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import build_model


def test_classic_layout_on_28() -> None:
    model = build_model("lenet5")
    x = torch.zeros(1, 1, 28, 28)
    shapes = []
    for stage in model.features:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(6, 14, 14), (16, 5, 5)]
    assert [model.classifier.fc1.out_features, model.classifier.fc2.out_features] == [120, 84]
    assert model.features[0].conv.kernel_size == (5, 5)


def test_pads_on_8() -> None:
    model = build_model("lenet5", input_size=8)
    assert [s.conv.padding for s in model.features] == [(2, 2), (2, 2)]
    assert model.classifier.fc1.in_features == 16 * 2 * 2


def test_too_small_input() -> None:
    with pytest.raises(ConfigError, match="input_size 2 is too small for 2 conv stages"):
        build_model("lenet5", input_size=2)
