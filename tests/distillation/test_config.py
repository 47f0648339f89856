"""DistillConfig: defaults, validation at construction, and dict round trips."""

from __future__ import annotations

import pytest

from slimkit.distillation import DEFAULT_LOSSES, DistillConfig
from slimkit.errors import ConfigError
from slimkit.train import TrainConfig


def test_defaults_are_hinton_kd_with_hard_labels():
    config = DistillConfig()
    assert config.losses == [dict(s) for s in DEFAULT_LOSSES]
    assert (config.cache_teacher, config.teacher_weighting) == ("auto", "mean")
    assert config.student_view == config.teacher_view == {"name": "identity"}
    assert isinstance(config.train, TrainConfig)


def test_round_trips_through_plain_data():
    data = {"losses": [{"name": "dkd", "weight": 1.0}, {"name": "ce"}], "train": {"epochs": 2, "lr": 0.01},
            "cache_teacher": "disk", "cache_dir": "/tmp/c", "teacher_weighting": "weighted",
            "teacher_weights": [1, 2], "student_view": {"name": "downsample", "size": 14}}
    config = DistillConfig.from_dict(data, source="recipe.yaml")
    assert config.train.epochs == 2 and config.student_view == {"name": "downsample", "size": 14}
    assert DistillConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, message", [
    ({"losses": [{"name": "kdd"}]}, "unknown distillation loss 'kdd'. Did you mean 'kd'"),
    ({"losses": [{"name": "kd", "temprature": 2}]}, "unknown argument 'temprature'. Did you mean 'temperature'"),
    ({"losses": []}, "non-empty list"),
    ({"cache_teacher": "ram"}, "field 'cache_teacher'"),
    ({"student_view": {"name": "blur"}}, "unknown input view 'blur'"),
    ({"teacher_weighting": "weighted"}, "needs teacher_weights"),
    ({"teacher_weights": [1.0]}, "only used with teacher_weighting='weighted'"),
    ({"teacher_weighting": "weighted", "teacher_weights": [-1.0, 2.0]}, "non-negative"),
    ({"train": {"epoch": 2}}, "epoch"),
    ({"cache_max_mb": 0}, "cache_max_mb"),
    ({"temperature": 4}, "unknown field 'temperature'"),
])
def test_bad_fields_fail_at_construction(data, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig.from_dict(data, source="recipe.yaml")
