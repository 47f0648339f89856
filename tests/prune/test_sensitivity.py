import pytest
import torch

from slimkit.errors import ConfigError, ModelError
from slimkit.evaluate import count_macs
from slimkit.models import build_model
from slimkit.prune import StructuredPruning, choose_ratios, prune, sensitivity


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
    with pytest.raises(ConfigError, match="exactly one of"):
        choose_ratios(result)
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\)"):
        choose_ratios(result, target_macs=1.5)
    with pytest.raises(ModelError, match="cannot reach macs 1%"):
        choose_ratios(result, target_macs=0.01)
    with pytest.raises(ConfigError, match=r"ratios must be in \(0, 1\)"):
        sensitivity(build_model("mlp", input_size=8), tiny_loader, ratios=(0.5, 1.0))
