"""TrainConfig defaults and validation."""

from __future__ import annotations

import pytest

from slimkit.errors import ConfigError
from slimkit.train import TrainConfig
from slimkit.train.config import RESUMABLE_CHANGES


def test_defaults_match_the_contract():
    config = TrainConfig()
    assert (config.epochs, config.optimizer, config.lr, config.momentum, config.weight_decay) == (6, "adamw", 3e-3, 0.9, 5e-4)
    assert (config.schedule, config.label_smoothing, config.grad_clip, config.amp) == ("onecycle", 0.0, None, False)
    assert (config.early_stopping_patience, config.seed, config.threads, config.device, config.progress) == (None, 0, None, "auto", True)


def test_round_trip_and_did_you_mean():
    config = TrainConfig(epochs=2, schedule="onecycle", grad_clip=1.0)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"recipe.yaml: TrainConfig: unknown field 'lerning_rate'"):
        TrainConfig.from_dict({"lerning_rate": 0.1}, source="recipe.yaml")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("schedule", "step", "'cosine', 'onecycle' or 'constant'"),
        ("lr", 0, "greater than 0"),
        ("label_smoothing", 1.0, "less than 1"),
        ("grad_clip", -1.0, "greater than 0"),
        ("early_stopping_patience", 0, "greater than or equal to 1"),
        ("warmup_epochs", 6, r"warmup_epochs \(6.0\) must be smaller than epochs \(6\)"),
    ],
)
def test_invalid_values_name_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{field: value})


def test_resumable_changes_are_real_fields():
    assert RESUMABLE_CHANGES <= set(TrainConfig.model_fields)
    assert "optimizer" not in RESUMABLE_CHANGES
