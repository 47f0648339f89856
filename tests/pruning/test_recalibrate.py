import copy

import torch
from torch import nn

from slimkit.models import build_model
from slimkit.pruning import StructuredPruning, prune, recalibrate_bn


def test_statistics_are_those_of_the_batches_and_nothing_else_changes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU()).eval()
    x = [torch.randn(16, 1, 6, 6) * 3 + 1 for _ in range(3)]
    weights = copy.deepcopy(net.state_dict())
    recalibrate_bn(net, [(b, torch.zeros(16)) for b in x])
    conv_out = torch.cat([net[0](b) for b in x])
    with torch.no_grad():
        assert torch.allclose(net[1].running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
        per_batch_var = torch.stack([net[0](b).var((0, 2, 3)) for b in x]).mean(0)
    assert torch.allclose(net[1].running_var, per_batch_var, rtol=1e-3)  # averaged over batches (unbiased)
    assert not net.training and net[1].momentum == 0.3  # mode and momentum as they were
    assert torch.equal(net[0].weight, weights["0.weight"]) and torch.equal(net[1].weight, weights["1.weight"])
    assert int(net[1].num_batches_tracked) == 3


def test_a_pruned_model_scores_better_with_its_own_statistics():
    torch.manual_seed(0)
    x = torch.randn(256, 1, 8, 8)
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    recalibrate_bn(model, [x])  # the "trained" statistics of the unpruned model
    pruned = prune(copy.deepcopy(model), StructuredPruning(ratio=0.5), example_inputs=x[:2]).eval()
    with torch.no_grad():
        stale = pruned.features[1].bn(pruned.features[1].conv(pruned.features[0](x)))
        recalibrate_bn(pruned, [x])
        fresh = pruned.features[1].bn(pruned.features[1].conv(pruned.features[0](x)))
    # re-estimated statistics normalize the layer's outputs again: zero mean, unit variance
    assert fresh.mean((0, 2, 3)).abs().max() < 1e-4 < stale.mean((0, 2, 3)).abs().max()
    assert (fresh.var((0, 2, 3)) - 1).abs().max() < 0.05


def test_a_model_without_batchnorm_is_returned_as_is():
    net = nn.Linear(3, 2)
    assert recalibrate_bn(net, [torch.randn(4, 3)]) is net
