"""Tuning: pruners stop a clearly bad trial (val acc reported per epoch by a Trainer callback),
the time budget holds, and the best result so far survives an interruption."""

import time

import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.errors import ConfigError
from slimkit.export.serialize import load_model
from slimkit.models import build_model
from slimkit.search.tune import ParamSpec, TrialOutcome, TrialReporter, read_best, tune
from slimkit.search.workers import PrunerConfig, open_storage
from slimkit.train import TrainConfig, Trainer


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _loaders():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True), DataLoader(TensorDataset(x, y), batch_size=96)


def _train_objective(params, trial):
    """A linear classifier; lr=1e-6 cannot learn in 3 epochs: a clearly bad trial."""
    train, val = _loaders()
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    config = TrainConfig(epochs=3, lr=params["lr"], optimizer="sgd", schedule="constant", progress=False)
    result = Trainer(model, config, callbacks=[TrialReporter(trial)]).fit(train, val)
    return TrialOutcome(result.history[-1]["val_acc"], model)


def test_pruner_stops_a_clearly_bad_trial(tmp_path):
    result = tune(_train_objective, {"lr": {"type": "categorical", "choices": [0.5, 1e-6]}}, tmp_path,
                  n_trials=3, pruner=PrunerConfig(name="median", startup_trials=2),
                  enqueue=[{"lr": 0.5}, {"lr": 0.5}, {"lr": 1e-6}])
    study = optuna.load_study(study_name="tune", storage=open_storage(result.storage))
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert list(study.trials[2].intermediate_values) == [1]  # stopped after its first epoch
    assert result.complete == 2 and result.pruned == 1 and result.best["params"] == {"lr": 0.5}


def test_time_budget_is_respected(tmp_path):
    def slow(params, trial):
        time.sleep(0.3)
        return params["x"]

    start = time.perf_counter()
    result = tune(slow, {"x": ParamSpec(type="float", low=0, high=1)}, tmp_path, n_trials=None, timeout=1.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0 + 0.3 + 1.5 and 1 <= result.complete <= 4  # stops starting trials at the budget


def test_a_trial_running_past_the_deadline_stops_at_its_next_epoch(tmp_path):
    def training(params, trial):
        trial.set_user_attr("deadline", time.time() - 1)  # already past
        return _train_objective(params, trial)

    result = tune(training, {"lr": {"type": "categorical", "choices": [0.5]}}, tmp_path, n_trials=1)
    study = optuna.load_study(study_name="tune", storage=open_storage(result.storage))
    assert study.trials[0].state.name == "PRUNED" and len(study.trials[0].intermediate_values) == 1


def test_best_so_far_is_saved_when_interrupted_and_a_rerun_resumes(tmp_path):
    calls = []

    def objective(params, trial):
        calls.append(params["h"])
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the 4th trial
        torch.manual_seed(0)
        return TrialOutcome(params["h"] / 10, build_model("mlp", input_size=2, hidden=[params["h"]], num_classes=2))

    space = {"h": {"type": "int", "low": 1, "high": 9}}
    with pytest.raises(KeyboardInterrupt):
        tune(objective, space, tmp_path, n_trials=6, enqueue=[{"h": 3}, {"h": 7}, {"h": 5}])
    best = read_best(tmp_path)
    assert best["params"] == {"h": 7} and best["value"] == pytest.approx(0.7) and best["trial"] == 1
    assert load_model(tmp_path / best["model"]).features[0].fc.out_features == 7
    assert sorted(p.name for p in tmp_path.glob("trial-*")) == ["trial-1"]  # older bests are removed
    result = tune(objective, space, tmp_path, n_trials=6)
    assert result.complete == 6 and len(calls) == 4 + 3  # only the missing trials ran


def test_parameter_specs_are_validated():
    with pytest.raises(ConfigError, match="needs a non-empty 'choices'"):
        ParamSpec(type="categorical")
    with pytest.raises(ConfigError, match="log-scale parameter needs low > 0"):
        ParamSpec(type="float", low=0, high=1, log=True)
    with pytest.raises(ConfigError, match="direction"):
        tune(lambda p, t: 0.0, {}, ".", direction="up")
