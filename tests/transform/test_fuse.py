import copy

import pytest
import torch
from torch import nn

from slimkit.evaluate import count_params
from slimkit.export import report_of
from slimkit.models import MODELS, build_model
from slimkit.transform import FuseConfig, find_fusable, fuse


def trained_looking(name):
    """A tiny registry model whose BatchNorms hold non-trivial statistics and affine terms."""
    torch.manual_seed(0)
    model = build_model(name, input_size=8, num_classes=3)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("name", MODELS.names())
def test_fused_model_matches_in_eval_mode(name):
    model = trained_looking(name)
    x = torch.randn(4, 1, 8, 8)
    fused = fuse(copy.deepcopy(model))
    assert (fused(x) - model(x)).abs().max() < 1e-5
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(report_of(fused, "fuse")["fused"]) == norms  # every zoo BN directly follows a conv
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    if norms:
        assert count_params(fused) < count_params(model)


def test_resnet_pairs_follow_the_data_flow():
    pairs = find_fusable(trained_looking("resnet"))
    assert ["features.1.0.conv1", "features.1.0.bn1", "features.1.0.relu1"] in pairs
    assert ["features.2.0.shortcut.conv", "features.2.0.shortcut.bn", None] in pairs


def test_linear_bn_and_relu_pairing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model.train()(torch.randn(32, 6))  # gather running statistics
    model.eval()
    x = torch.randn(5, 6)
    fused = fuse(copy.deepcopy(model), FuseConfig(relu=True))
    assert type(fused[0]).__name__ == "LinearReLU" and isinstance(fused[1], nn.Identity)
    assert (fused(x) - model(x)).abs().max() < 1e-5


def test_excluded_and_shared_outputs_are_left_alone():
    model = trained_looking("cnn")
    fused = fuse(copy.deepcopy(model), FuseConfig(exclude=["features.0.*"]))
    assert isinstance(fused.features[0].bn, nn.BatchNorm2d)

    class TwoUses(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # the conv's raw output is used too: folding would change it

    assert report_of(fuse(TwoUses().eval()), "fuse")["fused"] == []


def test_a_shared_layer_is_left_unfused_with_the_reason():
    from slimkit.sharing import ShareConfig, share

    model = share(trained_looking("cnn"), ShareConfig(bits=4, include=["features.0.conv"]))
    x = torch.randn(2, 1, 8, 8)
    before = model(x)
    report = report_of(fuse(model), "fuse")
    assert {"layer": "features.0.conv", "norm": "features.0.bn",
            "reason": "the layer's weight is parametrized (shared or masked): fuse first, or bake() it"} in report["skipped"]
    assert ["features.1.conv", "features.1.bn", None] in report["fused"]
    assert (model(x) - before).abs().max() < 1e-5
