import pytest
import torch

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs
from slimkit.models import build_model
from slimkit.pruning import StructuredPruning, choose_ratios, prune, sensitivity
from slimkit.pruning.sensitivity import single


@pytest.fixture
def analysed(tiny_loader):
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    return model, sensitivity(model, tiny_loader, ratios=(0.25, 0.5, 0.75))


def test_each_layer_is_swept_alone(analysed):
    model, result = analysed
    assert list(result.accuracy) == ["features.0.conv", "features.1.conv", "classifier.fc1"]
    assert all(len(v) == 3 for v in result.accuracy.values())
    base = result.baseline["macs"]
    assert base == count_macs(model, torch.zeros(1, 1, 8, 8))
    assert all(m[0] > m[1] > m[2] and m[0] < base for m in result.macs.values())
    assert model.features[1].conv.out_channels == 16  # the model itself is untouched


def test_table_markdown_and_plot(analysed, tmp_path):
    _, result = analysed
    assert "| features.1.conv |" in result.markdown() and result.table().row_count == 3
    path = result.plot(tmp_path / "sensitivity.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["sensitivity.png"]
    assert set(result.to_dict()) == {"ratios", "baseline", "accuracy", "loss", "macs", "params", "criterion"}


def test_choice_meets_the_target_pruning_the_least_sensitive_layer(analysed):
    model, result = analysed
    base = result.baseline["accuracy"]
    result.accuracy = {name: [base - 0.5] * 3 for name in result.accuracy}
    result.accuracy["features.1.conv"] = [base, base, base - 0.01]
    ratios = choose_ratios(result, target_macs=0.7)
    assert list(ratios) == ["features.1.conv"]
    prune(model, StructuredPruning(ratios=ratios))
    assert count_macs(model, torch.zeros(1, 1, 8, 8)) <= 0.7 * result.baseline["macs"]


def test_choice_over_several_layers_meets_a_params_target(analysed):
    model, result = analysed
    ratios = choose_ratios(result, target_params=0.5)
    prune(model, StructuredPruning(ratios=ratios))
    assert model.slimkit_history[-1]["params"][1] <= 0.5 * result.baseline["params"]


def test_bad_targets_and_sweeps_are_refused(analysed, tiny_loader):
    _, result = analysed
    with pytest.raises(ConfigError, match="needs a target"):
        choose_ratios(result)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\)"):
        choose_ratios(result, target_macs=1.5)
    with pytest.raises(ModelError, match="cannot reach macs 1%"):
        choose_ratios(result, target_macs=0.01)
    with pytest.raises(ConfigError, match=r"ratios must be in \(0, 1\)"):
        sensitivity(build_model("mlp", input_size=8), tiny_loader, ratios=(0.5, 1.0))


def test_latency_is_timed_per_cut_and_can_be_a_target(tiny_loader):
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8)
    result = sensitivity(model, tiny_loader, ratios=(0.25, 0.5, 0.75), latency_batch_size=4, latency_repeats=2)
    assert set(result.latency) == set(result.accuracy) and all(len(v) == 3 for v in result.latency.values())
    assert all(share > 0 for v in result.latency.values() for share in v)
    assert result.to_dict()["latency"] == result.latency
    # made-up timings: only the classifier's cut saves time, so a latency target must cut it
    base = result.baseline["accuracy"]
    result.latency = {name: [1.0, 1.0, 1.0] for name in result.latency}
    result.latency["classifier.fc1"] = [0.9, 0.7, 0.5]
    result.accuracy["classifier.fc1"] = [base - 0.01, base - 0.02, base - 0.2]
    ratios = choose_ratios(result, target_latency=0.75)
    assert ratios == {"classifier.fc1": 0.5}  # 0.75 would save more time than needed, at 10x the loss
    # both targets: the MACs one is met exactly, the latency one by the prediction
    both = choose_ratios(result, target_macs=0.7, target_latency=0.75)
    assert both["classifier.fc1"] == 0.5
    prune(model, StructuredPruning(ratios=both))
    assert count_macs(model, torch.zeros(1, 1, 8, 8)) <= 0.7 * result.baseline["macs"]
    with pytest.raises(ModelError, match="cannot reach latency 40%"):
        choose_ratios(result, target_latency=0.4)


def test_a_latency_target_needs_measured_latencies(analysed):
    _, result = analysed
    with pytest.raises(ConfigError, match="latency_batch_size"):
        choose_ratios(result, target_latency=0.5)
    with pytest.raises(ConfigError, match="latency_repeats >= 1"):
        sensitivity(build_model("mlp", input_size=8), [], latency_batch_size=8, latency_repeats=0)


def test_give_back_lands_closer_to_the_target_and_still_meets_it(tiny_loader):
    torch.manual_seed(0)
    result = sensitivity(build_model("cnn", channels=[8, 16], hidden=16, input_size=8), tiny_loader, ratios=(0.25, 0.5, 0.75))
    plain = choose_ratios(result, target_macs=0.6)
    closer = choose_ratios(result, target_macs=0.6, give_back=True)
    pruner, base = result.pruner, result.baseline["macs"]

    def kept(ratios):
        counts = {g.name: single(pruner, g.name, ratios[g.name])[g.name] if g.name in ratios else 0 for g in pruner.groups}
        return pruner.cost(counts, "macs") / base

    assert closer != plain and kept(plain) < kept(closer) <= 0.6
    assert all(closer.get(layer, 0) <= ratio for layer, ratio in plain.items())
