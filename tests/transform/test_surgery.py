import copy

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.models import build_model
from slimkit.transform import Geometry, example_input, get_layer, layer_geometry, replace_module, trace_layers
from slimkit.transform.summary import before_after_table, cost_summary
from slimkit.transform.surgery import require_input, restore


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


def test_trace_takes_mapping_inputs_and_leaves_out_layers_that_did_not_run():
    class Keyed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.spare, self.fc = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(4, 4), nn.Linear(6, 3)

        def forward(self, image, extra):
            return self.fc(torch.cat([self.conv(image).mean((2, 3)), extra], 1))

    found = trace_layers(Keyed(), ["conv", "spare", "fc"], {"image": torch.zeros(3, 1, 5, 5), "extra": torch.ones(3, 4)})
    assert found == {"conv": Geometry((5, 5), (5, 5), 25), "fc": Geometry()}


def test_example_input_prefers_given_then_the_recorded_spec_then_the_loader():
    net = nn.Linear(3, 2)
    assert example_input(net) is None
    batches = [({"ids": torch.tensor([[1, 2]])}, torch.tensor([0]))]
    assert example_input(net, loader=batches)["ids"].dtype == torch.long
    net.slimkit_inputs = {"kind": "tensor", "tensors": [{"name": "input", "shape": [3], "dtype": "float32"}]}
    assert example_input(net, loader=batches).shape == (1, 3)
    with pytest.raises(ConfigError, match="a MAC target needs example_inputs"):
        require_input(nn.Linear(3, 2), None, "a MAC target")


def test_restore_undoes_a_parametrization_and_a_swapped_child():
    from slimkit.sharing import ShareConfig, share

    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    snapshot = copy.deepcopy(net)
    share(net, ShareConfig(bits=1))
    replace_module(net, "1", nn.Tanh())
    restore(net, snapshot)
    assert type(net[0]) is nn.Linear and isinstance(net[1], nn.ReLU) and not hasattr(net, "slimkit_history")


def test_summary_table_ratios():
    before = cost_summary(nn.Linear(10, 10), torch.zeros(1, 10))
    after = cost_summary(nn.Linear(10, 5), torch.zeros(1, 10))
    assert (before["params"], after["params"], after["macs"]) == (110, 55, 50)
    table = before_after_table(before, after, "t")
    assert table.row_count == 3
