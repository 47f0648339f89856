"""Ready-made tuning objectives on tiny data: distillation hyperparameters, pruning and
quantization settings, each scored on the validation split."""

import pytest
import torch

from slimkit.data import make_loaders
from slimkit.distillation import DistillConfig
from slimkit.errors import ConfigError
from slimkit.export.serialize import load_model
from slimkit.models import build_model
from slimkit.pruning import StructuredPruning
from slimkit.quantization import LowBit
from slimkit.search.objectives import (
    DistillObjective,
    PruneObjective,
    QuantizeObjective,
    distill_config,
    set_path,
)
from slimkit.search.tune import tune
from slimkit.train import TrainConfig, train

ONE_EPOCH = TrainConfig(epochs=1, progress=False)


@pytest.fixture
def setup(tiny_splits):
    torch.set_num_threads(1)
    loaders = make_loaders(tiny_splits, batch_size=16)
    torch.manual_seed(0)
    teacher = build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8)
    train(teacher, loaders.train, epochs=2, progress=False)
    return loaders, teacher.eval()


def test_distill_config_applies_shortcuts_and_paths():
    config = distill_config(DistillConfig(), {"method": "dkd", "alpha": 0.7, "temperature": 2.0, "losses.0.beta": 4.0,
                                              "train.lr": 0.01})
    assert config.losses == [{"name": "dkd", "weight": 0.7, "temperature": 2.0, "beta": 4.0}, {"name": "ce", "weight": pytest.approx(0.3)}]
    assert config.train.lr == 0.01
    with pytest.raises(ConfigError, match="Did you mean 'kd'"):
        distill_config(DistillConfig(), {"method": "kdd"})
    with pytest.raises(ConfigError, match="not an index"):
        set_path({"losses": []}, "losses.3.weight", 1.0)


def test_distill_objective_tunes_and_keeps_the_best_student(setup, tmp_path):
    loaders, teacher = setup
    student = build_model("cnn", input_size=8, num_classes=3, channels=[2, 4], hidden=4)
    objective = DistillObjective(student, teacher, loaders.train, loaders.val, DistillConfig(train=ONE_EPOCH),
                                 cache_dir=tmp_path / "cache")
    params = {"method": {"type": "categorical", "choices": ["kd", "dkd"]}, "temperature": {"type": "float", "low": 1, "high": 8},
              "alpha": {"type": "float", "low": 0.5, "high": 0.95}}
    result = tune(objective, params, tmp_path / "tune", n_trials=2)
    assert result.complete == 2 and set(result.best["params"]) == {"method", "temperature", "alpha"}
    best = load_model(tmp_path / "tune" / result.best["model"])
    assert best(torch.zeros(1, 1, 8, 8)).shape == (1, 3)
    assert list((tmp_path / "cache").glob("*.safetensors"))  # teacher outputs computed once, on disk


def test_prune_objective_tunes_the_criterion_at_a_fixed_ratio(setup, tmp_path):
    loaders, teacher = setup
    objective = PruneObjective(teacher, loaders.train, loaders.val, StructuredPruning(ratio=0.5))
    params = {"criterion": {"type": "categorical", "choices": ["l1", "l2"]}, "recover.epochs": {"type": "int", "low": 0, "high": 1}}
    result = tune(objective, params, tmp_path, n_trials=2, enqueue=[{"criterion": "l1", "recover.epochs": 1},
                                                                   {"criterion": "l2", "recover.epochs": 0}])
    assert result.complete == 2 and result.best["info"]["params"] < sum(p.numel() for p in teacher.parameters())
    assert 0.0 <= result.best["value"] <= 1.0


def test_quantize_objective_keeps_settings_only(setup, tmp_path):
    loaders, teacher = setup
    objective = QuantizeObjective(teacher, loaders.train, loaders.val, LowBit(bits=4, calibration_batches=2))
    result = tune(objective, {"symmetric": {"type": "categorical", "choices": [True, False]}}, tmp_path, n_trials=2)
    assert result.complete == 2 and result.best["model"] is None and result.best["info"]["scheme"] == "LowBit"
    assert 0.0 <= result.best["value"] <= 1.0
