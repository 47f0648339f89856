"""MLP: the classic sizes and an empty hidden list."""

from __future__ import annotations

import pytest
from torch import nn

from slimkit.models import build_model


@pytest.mark.parametrize(
    ("hidden", "params"),
    [([300, 100], 266_610), ([800, 800], 1_276_810), ([1200, 1200], 2_395_210)],
)
def test_classic_param_counts(hidden: list[int], params: int) -> None:
    model = build_model("mlp", hidden=hidden)
    assert sum(p.numel() for p in model.parameters()) == params
    assert [b.fc.out_features for b in model.features] == hidden


def test_no_hidden_is_logistic_regression() -> None:
    model = build_model("mlp", hidden=[], input_size=8)
    assert [type(m) for m in model.modules() if isinstance(m, nn.Linear)] == [nn.Linear]
    assert model.classifier.out.in_features == 64


def test_dropout_blocks() -> None:
    model = build_model("mlp", dropout=0.5)
    assert [n for n, _ in model.features[0].named_children()] == ["fc", "relu", "drop"]
    assert model.features[0].drop.p == 0.5
