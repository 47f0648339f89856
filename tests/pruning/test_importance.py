import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.pruning import IMPORTANCE, ChannelPruner, ScoreContext, StructuredPruning
from slimkit.pruning.importance import make_scorer


def _scores(model, criterion, loader=None, **options):
    config = StructuredPruning(criterion=criterion, ratio=0.5, **options)
    return ChannelPruner(model, config, torch.zeros(1, 1, 8, 8), loader=loader).scores


def _mlp():
    model = build_model("mlp", hidden=[4], input_size=8)
    with torch.no_grad():
        model.features[0].fc.weight.copy_(torch.tensor([[0.1], [2.0], [0.5], [1.0]]).expand(4, 64))
        model.features[0].fc.bias.fill_(0.0)
        model.classifier.out.weight.fill_(0.1)
    return model


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_norm_criteria_order_channels_by_weight(criterion):
    assert torch.argsort(_scores(_mlp(), criterion)["features.0.fc"]).tolist() == [0, 2, 3, 1]


def test_activation_criteria_follow_the_activations(tiny_loader):
    x = next(iter(tiny_loader))[0].abs()  # positive inputs: activation grows with the weight
    loader = [(x, torch.zeros(len(x), dtype=torch.long))]
    assert torch.argsort(_scores(_mlp(), "activation", loader)["features.0.fc"]).tolist() == [0, 2, 3, 1]
    apoz = _scores(_mlp(), "activation", loader, activation_stat="apoz")["features.0.fc"]
    assert torch.allclose(apoz, torch.ones(4))  # every unit is always active here


def test_taylor_uses_gradients_and_leaves_none_behind(tiny_loader):
    model = build_model("cnn", channels=[4, 8], hidden=8, input_size=8)
    scores = _scores(model, "taylor", tiny_loader)
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert all(p.grad is None for p in model.parameters())


def test_bn_scale_reads_gamma():
    model = build_model("cnn", channels=[4], hidden=0, input_size=8)
    with torch.no_grad():
        model.features[0].bn.weight.copy_(torch.tensor([0.3, -0.1, 2.0, 1.0]))
    scores = _scores(model, "bn_scale", allocation="global")["features.0.conv"]
    assert torch.argsort(scores).tolist() == [1, 0, 3, 2]
    with pytest.raises(ConfigError, match="needs BatchNorm layers"):
        _scores(build_model("mlp", input_size=8), "bn_scale")


def test_random_is_seeded():
    model = build_model("mlp", hidden=[8], input_size=8)
    a, b = _scores(model, "random", seed=1), _scores(model, "random", seed=1)
    assert torch.equal(a["features.0.fc"], b["features.0.fc"])


def test_registry_lists_every_criterion_with_metadata():
    assert IMPORTANCE.names() == ["activation", "bn_scale", "l1", "l2", "random", "taylor"]
    assert IMPORTANCE.meta("taylor")["needs_data"] and not IMPORTANCE.meta("l1")["needs_data"]
    with pytest.raises(ConfigError, match="Did you mean 'taylor'"):
        make_scorer("tayler", ScoreContext(build_model("mlp", input_size=8)))
