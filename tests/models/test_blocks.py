"""Knob checks and shared blocks."""

from __future__ import annotations

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.models._blocks import classifier_head, conv_bn_relu, int_tuple, scale


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, r"model 'cnn': knob 'width' must be a number in \(0.0, 16.0\], got 0"),
        ({"channels": "32"}, r"knob 'channels' must be a list of positive ints \(at least one\)"),
        ({"channels": []}, r"knob 'channels' must be a list of positive ints"),
        ({"channels": [8, 0]}, r"knob 'channels' must be a list of positive ints"),
        ({"hidden": -1}, r"knob 'hidden' must be an int >= 0, got -1"),
        ({"dropout": 1.0}, r"knob 'dropout' must be a number in \[0.0, 1.0\)"),
        ({"num_classes": 2.5}, r"knob 'num_classes' must be an int >= 1"),
        ({"in_channels": True}, r"knob 'in_channels' must be an int >= 1"),
        ({"global_pool": 1}, r"knob 'global_pool' must be true or false"),
    ],
)
def test_bad_knob_values_name_the_knob(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        build_model("cnn", **kwargs)
    assert "model 'cnn'" in str(info.value)
    assert info.value.hint


def test_int_tuple_accepts_lists_and_tuples() -> None:
    assert int_tuple("m", "k", [1, 2]) == int_tuple("m", "k", (1, 2)) == (1, 2)
    assert int_tuple("m", "k", [], allow_empty=True) == ()


def test_scale_keeps_at_least_one_channel() -> None:
    assert [scale(16, w) for w in (2.0, 1.0, 0.5, 0.01)] == [32, 16, 8, 1]


def test_conv_block_keeps_size_and_pools() -> None:
    block = conv_bn_relu(2, 5, pool=True)
    assert block(torch.randn(2, 2, 8, 8)).shape == (2, 5, 4, 4)
    assert block.conv.bias is None


def test_relu_is_not_in_place() -> None:
    # Hooks that keep BN outputs (distillation) must not see them overwritten by the ReLU.
    model = build_model("cnn", channels=[4], hidden=0, input_size=8)
    assert all(not m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))


def test_classifier_head_dropout_without_hidden() -> None:
    names = [n for n, _ in classifier_head(4, (), 3, dropout=0.1, pool=True).named_children()]
    assert names == ["pool", "flatten", "drop", "out"]
