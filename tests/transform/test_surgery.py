import pytest
import torch
from torch import nn

from slimkit.errors import ModelError
from slimkit.models import build_model
from slimkit.transform import Geometry, get_layer, layer_geometry, replace_module
from slimkit.transform.summary import before_after_table, cost_summary


def test_replace_and_missing_layer():
    net = build_model("cnn", channels=[4, 8], hidden=0, input_size=8)
    replace_module(net, "features.1.conv", nn.Identity())
    assert isinstance(net.features[1].conv, nn.Identity)
    with pytest.raises(ModelError, match="no layer 'features.9.conv'"):
        get_layer(net, "features.9.conv")


def test_geometry_records_spatial_sizes():
    net = build_model("cnn", channels=[4, 8], hidden=0, input_size=8)
    geo = layer_geometry(net, ["features.1.conv", "classifier.out"], torch.zeros(1, 1, 8, 8))
    assert geo["features.1.conv"] == Geometry((4, 4), (4, 4), 16)
    assert geo["classifier.out"].positions == 1


def test_summary_table_ratios():
    before = cost_summary(nn.Linear(10, 10), torch.zeros(1, 10))
    after = cost_summary(nn.Linear(10, 5), torch.zeros(1, 10))
    assert (before["params"], after["params"], after["macs"]) == (110, 55, 50)
    table = before_after_table(before, after, "t")
    assert table.row_count == 3
