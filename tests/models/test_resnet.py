"""ResNet: depth rule, layout and real residual adds."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import fx, nn

from slimkit.errors import ConfigError
from slimkit.models import BasicBlock, build_model


@pytest.mark.parametrize(("depth", "blocks"), [(8, 1), (14, 2), (20, 3), (32, 5)])
def test_depth_sets_blocks_per_stage(depth: int, blocks: int) -> None:
    model = build_model("resnet", depth=depth, input_size=8)
    assert [len(stage) for stage in model.features[1:]] == [blocks] * 3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == depth  # 3x3 convs plus the fc layer make the nominal depth


@pytest.mark.parametrize("depth", [0, 7, 10, 21])
def test_bad_depth(depth: int) -> None:
    with pytest.raises(ConfigError, match=rf"model 'resnet': .*depth.* got {depth}"):
        build_model("resnet", depth=depth)


def test_layout_and_shortcuts() -> None:
    model = build_model("resnet", depth=8, base_channels=4)
    assert isinstance(model.features[1][0].shortcut, nn.Identity)
    proj = model.get_submodule("features.2.0.shortcut.conv")
    assert (proj.in_channels, proj.out_channels, proj.stride) == (4, 8, (2, 2))
    assert isinstance(model.get_submodule("features.3.0.shortcut.bn"), nn.BatchNorm2d)
    assert model.classifier.out.in_features == 16


def test_residual_is_a_real_add() -> None:
    block = BasicBlock(4, 4, 1)
    graph = fx.symbolic_trace(block).graph
    adds = [n for n in graph.nodes if n.op == "call_function" and n.target is operator.add]
    assert len(adds) == 1
    # Zeroing the residual branch leaves relu(x): the identity path really is added.
    nn.init.zeros_(block.bn2.weight)
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(block(x), torch.relu(x))
