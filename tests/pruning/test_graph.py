"""Bad input for structured pruning: errors that name the module and say what to do."""

import pytest
import torch
from torch import nn

from slimkit.errors import ModelError
from slimkit.pruning import StructuredPruning, UnstructuredPruning, prune, register_layer
from slimkit.pruning.graph import CUSTOM_LAYERS


class ChannelScale(nn.Module):
    """A custom layer with a per-channel parameter that torch-pruning does not know."""

    def __init__(self, channels):
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        return x * self.gain.view(1, -1, 1, 1)


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.scale = ChannelScale(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.conv2(self.scale(self.conv(x))).mean((2, 3)))


def test_unsupported_custom_layer_is_named_with_both_fixes(example):
    with pytest.raises(ModelError, match=r"module 'scale' \(ChannelScale\) holds parameter 'scale.gain'") as info:
        prune(WithScale(), StructuredPruning(ratio=0.5), example_inputs=example)
    assert "exclude=['scale']" in info.value.hint and "register_layer" in info.value.hint


def test_keeping_the_custom_layer_prunes_the_rest(example):
    model = WithScale()
    prune(model, StructuredPruning(ratio=0.5, exclude=["scale"]), example_inputs=example)
    assert model.conv.out_channels == 8 and model.scale.gain.numel() == 8
    assert model.conv2.out_channels == 4 and model(example).shape == (4, 3)


def test_registered_custom_layer_is_pruned_with_its_group(example):
    import torch_pruning as tp

    class ScalePruner(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer, idxs):
            keep = [i for i in range(layer.gain.numel()) if i not in set(idxs)]
            layer.gain = nn.Parameter(layer.gain.data[keep].clone())
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return layer.gain.numel()

        get_in_channels = get_out_channels

    register_layer(ChannelScale, ScalePruner())
    try:
        model = WithScale()
        prune(model, StructuredPruning(ratio=0.5), example_inputs=example)
        assert model.conv.out_channels == model.scale.gain.numel() == model.conv2.in_channels == 4
        assert model(example).shape == (4, 3)
    finally:
        CUSTOM_LAYERS.pop(ChannelScale)


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 36, 2)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def test_forward_failure_names_the_module():
    with pytest.raises(ModelError, match="forward pass failed in module 'head'") as info:
        prune(Broken(), StructuredPruning(ratio=0.5), example_inputs=torch.zeros(1, 1, 12, 12))
    assert "exclude=['head']" in info.value.hint


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(self.stem(x).detach()).mean((2, 3)))


def test_a_layer_the_tracer_cannot_follow_is_named(example):
    with pytest.raises(ModelError, match=r"the tracer lost layers \['stem'\]") as info:
        prune(Detached(), StructuredPruning(ratio=0.5), example_inputs=example)
    assert "exclude=['stem']" in info.value.hint
    model = Detached()
    prune(model, StructuredPruning(ratio=0.5, exclude=["stem"]), example_inputs=example)
    assert model.stem.out_channels == 4 and model.conv.out_channels == 2


def test_masked_model_must_be_made_permanent_first(example):
    model = WithScale()
    prune(model, UnstructuredPruning(amount=0.5, include=["conv"]))
    with pytest.raises(ModelError, match="parametrizations") as info:
        prune(model, StructuredPruning(ratio=0.5, exclude=["scale"]), example_inputs=example)
    assert "make_permanent" in info.value.hint
