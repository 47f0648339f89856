"""The searchnet family: the default student is a point of it; knobs shape the net; it reloads."""

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.export.serialize import load_model, save_model
from slimkit.models import DEFAULT_STUDENT, MODELS, build_model, searchnet


def test_defaults_are_the_default_student():
    ours, theirs = searchnet(), build_model(DEFAULT_STUDENT[0], **DEFAULT_STUDENT[1])
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert "searchnet" in MODELS


def test_knobs_shape_the_net():
    net = searchnet(input_size=8, num_classes=3, widths=[4, 6, 8], depths=[1, 2, 1], kernels=[5, 3, 3],
                    separable=[True, True, False], hidden=0)
    assert net.features[0].conv.kernel_size == (5, 5) and net.features[0].conv.groups == 1  # first conv standard
    assert net.features[1].dw.conv.groups == 4 and not hasattr(net.features[1], "pool")
    assert hasattr(net.features[2], "pool") and net.features[3].conv.out_channels == 8
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize("knobs, message", [
    ({"kernels": [3, 4]}, "kernels must be odd"),
    ({"depths": [1]}, "'depths' has 1 entries"),
    ({"separable": [True]}, "list of 2 booleans"),
    ({"widths": [4, 4, 4, 4]}, "too small for 4 pooling stages"),
])
def test_bad_knobs_name_the_knob(knobs, message):
    with pytest.raises(ConfigError, match=message):
        searchnet(input_size=8, **({"depths": [1] * len(knobs["widths"]), "kernels": [3] * len(knobs["widths"]),
                                    "separable": [False] * len(knobs["widths"])} if "widths" in knobs else {}), **knobs)


def test_saved_searchnet_reloads_with_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = build_model("searchnet", input_size=8, widths=[4, 8], kernels=[3, 5], separable=[False, True]).eval()
    again = load_model(save_model(net, tmp_path / "m")).eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(net(x), again(x))
