import pytest

from slimkit.errors import ConfigError
from slimkit.pruning import StructuredPruning, UnstructuredPruning


@pytest.mark.parametrize("field", ["ratio", "target_macs", "target_params"])
@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.2])
def test_structured_targets_outside_open_unit_interval_are_rejected(field, value):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        StructuredPruning(**{field: value})


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_unstructured_amount_outside_open_unit_interval_is_rejected(value):
    with pytest.raises(ConfigError, match="field 'amount'"):
        UnstructuredPruning(amount=value)


def test_per_layer_ratio_of_one_names_the_layer_and_the_fix():
    with pytest.raises(ConfigError, match="ratio for layer 'features.0.conv' must be in \\(0, 1\\).*drop the layer"):
        StructuredPruning(ratios={"features.0.conv": 1.0})


def test_unknown_criterion_suggests_the_closest():
    with pytest.raises(ConfigError, match="unknown criterion 'tayler'.*Did you mean 'taylor'"):
        StructuredPruning(criterion="tayler", ratio=0.3)


def test_two_targets_or_none_are_rejected():
    with pytest.raises(ConfigError, match="at most one target, got ratio and latency_ms"):
        StructuredPruning(ratio=0.3, latency_ms=2.0)
    with pytest.raises(ConfigError, match="say how much to prune"):
        StructuredPruning()


def test_unknown_layer_type_suggests_the_closest():
    with pytest.raises(ConfigError, match="'Linaer' is not a torch.nn layer class.*Did you mean 'Linear'"):
        UnstructuredPruning(types=["Linaer"])


def test_configs_round_trip_through_dicts():
    config = StructuredPruning(criterion="taylor", target_macs=0.5, exclude=["classifier.out"], ratios={"a.*": 0.2})
    assert StructuredPruning.from_dict(config.to_dict()) == config
    assert config.target == "target_macs"
    assert UnstructuredPruning.from_dict({"amount": 0.9, "scope": "global"}).scope == "global"
