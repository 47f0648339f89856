"""Method presets and their default feature layers, for every method the CLI offers."""

from __future__ import annotations

import pytest
import torch

from slimkit.distillation import DistillationLoss
from slimkit.distillation.methods import METHODS, default_features, method_losses
from slimkit.errors import ConfigError
from slimkit.models import build_model


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_builds_and_runs_on_zoo_models(method):
    torch.manual_seed(0)
    teacher = build_model("cnn", input_size=8, num_classes=3, channels=[8, 16, 16]).eval().requires_grad_(False)
    student = build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8)
    features = default_features(method, student, teacher) if method in ("fitnet", "at", "sp", "rkd", "pkt") else ()
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    with DistillationLoss(student, teacher, method_losses(method, features=features)) as loss:
        loss.prepare(student, (x, y))
        value, logs = loss(student(x), (x, y))
    assert torch.isfinite(value) and value.requires_grad and logs


def test_default_feature_pairs():
    teacher = build_model("cnn", input_size=8, channels=[8, 16, 16])
    student = build_model("cnn", input_size=8, channels=[4, 8])
    assert default_features("at", student, teacher) == [("features.0", "features.1"), ("features.1", "features.2")]
    assert default_features("fitnet", student, teacher) == [("features.1", "features.2")]
    assert default_features("rkd", student, teacher) == [("classifier.out:input",) * 2]


def test_presets_and_errors():
    assert method_losses("kd", temperature=8) == [{"name": "kd", "weight": 1.0, "temperature": 8.0}]
    assert method_losses("logit_std")[1] == {"name": "logit_std", "weight": 9.0, "temperature": 2.0}
    with pytest.raises(ConfigError, match="Did you mean 'dkd'"):
        method_losses("dkdd")
    with pytest.raises(ConfigError, match="needs feature pairs"):
        method_losses("at")
    with pytest.raises(ConfigError, match="alpha"):
        method_losses("kd+ce", alpha=1.5)
