import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs, count_params
from slimkit.export import load_model, save_model
from slimkit.models import MODELS, build_model
from slimkit.pruning import IMPORTANCE, ChannelPruner, StructuredPruning, prune

NO_BN = {"mlp", "lenet5"}


def _criteria_for(model_name):
    return [c for c in IMPORTANCE.names() if not (c == "bn_scale" and model_name in NO_BN)]


CASES = [(m, c) for m in MODELS.names() for c in _criteria_for(m)]


@pytest.mark.parametrize(("model_name", "criterion"), CASES)
def test_every_model_and_criterion_prunes_physically(model_name, criterion, tiny_loader, example, tmp_path):
    model = build_model(model_name, input_size=8)
    before = count_params(model)
    prune(model, StructuredPruning(criterion=criterion, ratio=0.4), loader=tiny_loader)
    out = model.eval()(example)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    assert count_params(model) < 0.8 * before
    change = model.slimkit_history[-1]
    assert change["kind"] == "prune_channels" and change["params"][1] == count_params(model)
    # Every pruned layer now really has fewer channels: at 40% each group keeps about 60%.
    for name, (was, now) in change["channels"].items():
        assert now == max(1, round(was * 0.6)), name
    save_model(model, tmp_path)
    assert torch.equal(load_model(tmp_path)(example), out)


@pytest.mark.parametrize("model_name", MODELS.names())
def test_logits_layer_is_never_pruned(model_name):
    model = build_model(model_name, input_size=8)
    prune(model, StructuredPruning(ratio=0.5))
    assert model.classifier.out.out_features == 10
    assert "classifier.out" not in model.slimkit_history[-1]["channels"]


def test_residual_branches_stay_in_step(example):
    model = build_model("resnet", depth=8, input_size=8)
    prune(model, StructuredPruning(ratio=0.5, allocation="global"))
    block = model.features[2][0]
    assert block.conv2.out_channels == block.shortcut.conv.out_channels == block.bn2.num_features
    assert model.features[3][0].conv1.in_channels == block.conv2.out_channels
    assert torch.isfinite(model(example)).all()


def test_depthwise_convs_follow_their_producer(example):
    model = build_model("mobilenet", input_size=8)
    prune(model, StructuredPruning(ratio=0.5))
    for block in list(model.features)[1:]:
        assert block.dw.conv.groups == block.dw.conv.in_channels == block.dw.conv.out_channels
    assert model.features[2].dw.conv.in_channels == model.features[1].pw.conv.out_channels
    assert torch.isfinite(model(example)).all()


class Concat(nn.Module):
    """Two conv branches concatenated, then a conv and a linear head after flatten."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 6, 3, padding=1)
        self.b = nn.Conv2d(1, 10, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.mix = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(8 * 8 * 8, 3)

    def forward(self, x):
        y = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], dim=1)))
        return self.head(torch.flatten(self.mix(y), 1))


def test_concatenation_and_flatten_head_are_cut_consistently(example):
    model = Concat().eval()
    prune(model, StructuredPruning(ratio=0.5), example_inputs=example)
    assert (model.a.out_channels, model.b.out_channels) == (3, 5)
    assert model.bn.num_features == model.mix.in_channels == 8
    assert model.mix.out_channels == 4 and model.head.in_features == 4 * 64
    assert model(example).shape == (4, 3)


@pytest.mark.parametrize("allocation", ["uniform", "global"])
@pytest.mark.parametrize(("target", "value"), [("target_macs", 0.5), ("target_params", 0.4)])
def test_macs_and_params_targets_are_met(allocation, target, value):
    model = build_model("cnn", channels=[16, 32], hidden=32, input_size=8)
    x = torch.zeros(1, 1, 8, 8)
    macs, params = count_macs(model, x), count_params(model)
    prune(model, StructuredPruning(**{target: value}, allocation=allocation))
    reached = count_macs(model, x) / macs if target == "target_macs" else count_params(model) / params
    assert value - 0.1 < reached <= value


def test_latency_budget_is_met(monkeypatch):
    import slimkit.evaluate

    def fake_latency(models, example, *, batch_sizes, **_):
        # Deterministic stand-in for timing: latency proportional to MACs.
        return {n: {b: {"median_ms": b * count_macs(m, example[:1]) / 1e4} for b in batch_sizes} for n, m in models.items()}

    monkeypatch.setattr(slimkit.evaluate, "measure_latency", fake_latency)
    model = build_model("cnn", channels=[32, 64], hidden=64, input_size=8)
    budget = 0.5 * 2 * count_macs(model, torch.zeros(1, 1, 8, 8)) / 1e4
    prune(model, StructuredPruning(latency_ms=budget, latency_batch_size=2))
    assert 0.8 * budget < 2 * count_macs(model, torch.zeros(1, 1, 8, 8)) / 1e4 <= budget
    with pytest.raises(ModelError, match="cannot reach latency"):
        prune(build_model("mlp", hidden=[8], input_size=8), StructuredPruning(latency_ms=1e-9))


def test_round_to_gives_multiples_and_keep_leaves_layers_whole():
    model = build_model("cnn", channels=[32, 64], hidden=64, input_size=8)
    prune(model, StructuredPruning(ratio=0.3, round_to=8, exclude=["features.0.*"]))
    assert model.features[0].conv.out_channels == 32
    assert model.features[1].conv.out_channels % 8 == 0 and model.classifier.fc1.out_features % 8 == 0


def test_global_allocation_ranks_across_layers_and_caps_each_layer():
    model = build_model("cnn", channels=[16, 32], hidden=32, input_size=8)
    with torch.no_grad():
        # 12 of 16 channels look useless in every layer of their group.
        model.features[0].conv.weight[:12].mul_(1e-3)
        model.features[0].bn.weight[:12].mul_(1e-3)
        model.features[1].conv.weight[:, :12].mul_(1e-3)
    prune(model, StructuredPruning(ratio=0.25, allocation="global", max_layer_ratio=0.5))
    channels = model.slimkit_history[-1]["channels"]
    removed = {k: was - now for k, (was, now) in channels.items()}
    assert removed["features.0.conv"] == 8  # capped at half, though 12 ranked lowest
    assert sum(removed.values()) == round(0.25 * (16 + 32 + 32))
    assert len(set(removed.values())) > 1


def test_per_layer_ratios_prune_only_those_layers():
    model = build_model("cnn", channels=[16, 32], hidden=32, input_size=8)
    prune(model, StructuredPruning(ratios={"features.1.conv": 0.5}))
    assert model.features[1].conv.out_channels == 16 and model.features[0].conv.out_channels == 16


def test_pruning_every_channel_of_a_layer_is_refused_with_the_layer_named():
    model = build_model("cnn", channels=[4, 8], hidden=8, input_size=8)
    with pytest.raises(ConfigError, match="ratio 0.9 for layer 'features.0.conv' would remove all of its 4 channels"):
        prune(model, StructuredPruning(ratios={"features.0.conv": 0.9}))


def test_unknown_pattern_in_keep_is_reported():
    with pytest.raises(ConfigError, match="exclude: pattern 'clasifier.out' matches no layer"):
        prune(build_model("mlp", input_size=8), StructuredPruning(ratio=0.3, exclude=["clasifier.out"]))


def test_data_criteria_need_a_loader():
    with pytest.raises(ConfigError, match="criterion 'taylor' needs data: pass loader="):
        prune(build_model("mlp", input_size=8), StructuredPruning(criterion="taylor", ratio=0.3))


def test_scores_decide_which_channels_go():
    model = build_model("mlp", hidden=[4], input_size=8)
    with torch.no_grad():
        model.features[0].fc.weight.copy_(torch.arange(4.0)[:, None].expand(4, 64) + 0.5)
    pruner = ChannelPruner(model, StructuredPruning(ratio=0.5), torch.zeros(1, 1, 8, 8))
    assert pruner.removals(pruner.counts(0.5)) == {"features.0.fc": [0, 1]}
