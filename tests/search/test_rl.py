"""The REINFORCE controller: MnasNet's reward, learning towards rewarded choices, a policy
rebuilt from the study alone (so resumption is exact), and a student search with strategy rl
that is interrupted mid-trial and resumes to the same trials and choice."""

import json

import optuna
import pytest
import torch

from slimkit.distillation import DistillConfig
from slimkit.search.costs import LatencyConfig
from slimkit.search.nas import NASConfig, StudentObjective
from slimkit.search.rl import RLConfig, mnas_reward
from slimkit.search.rl_sampler import ReinforceSampler
from slimkit.search.space import SearchSpace
from slimkit.search.students import search_students
from slimkit.train import TrainConfig

CHOICES = {"a": [0, 1, 2], "b": ["x", "y"]}


def toy_study(sampler: ReinforceSampler, trials: int, enqueue: dict | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    if enqueue:
        study.enqueue_trial(enqueue)
    study.optimize(lambda t: float(t.suggest_categorical("a", CHOICES["a"]) == 2) + 0.1 * (
        t.suggest_categorical("b", CHOICES["b"]) == "y"), n_trials=trials)
    return study


def reward(trial) -> float:
    return trial.value


def test_mnas_reward_scales_accuracy_by_latency():
    assert mnas_reward(0.9, 1.0, 1.0, 0.0, -1.0) == pytest.approx(0.9)
    assert mnas_reward(0.9, 2.0, 1.0, 0.0, -1.0) == pytest.approx(0.45)  # twice too slow: half the reward
    assert mnas_reward(0.9, 0.5, 1.0, -0.07, -0.07) > 0.9  # soft: faster earns a little more
    assert mnas_reward(0.9, 3.0, None, 0.0, -1.0) == 0.9  # no target: accuracy alone


def test_the_policy_learns_the_rewarded_choices():
    sampler = ReinforceSampler(CHOICES, RLConfig(lr=0.2), reward, seed=0)
    study = toy_study(sampler, 40)
    sampler.sync(study)
    probs = sampler.probabilities()
    assert probs["a"][2] > 0.7 and probs["b"][1] > 0.5
    late = [t.params["a"] for t in study.trials[-10:]]
    assert late.count(2) >= 7


def test_the_policy_is_rebuilt_from_the_study_alone():
    sampler = ReinforceSampler(CHOICES, RLConfig(lr=0.2), reward, seed=0)
    study = toy_study(sampler, 12, enqueue={"a": 0, "b": "x"})
    sampler.sync(study)
    fresh = ReinforceSampler(CHOICES, RLConfig(lr=0.2), reward, seed=0)
    fresh.sync(study)
    assert fresh.applied == sampler.applied and 0 not in fresh.applied  # the enqueued trial is not an episode
    for name in CHOICES:
        assert torch.equal(fresh.logits[name], sampler.logits[name])
    assert fresh.draw(len(fresh.applied)) == sampler.draw(len(sampler.applied))


def test_config_round_trip_and_strategy_in_nasconfig():
    config = NASConfig(strategy="rl", rl={"lr": 0.05, "latency_target_ms": 0.2})
    assert NASConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert NASConfig(strategy="tpe").sampler.name == "tpe" and NASConfig().strategy is None


SPACE = SearchSpace(stages=[2], base_widths=[4, 8], width_multipliers=[0.5, 1.0, 2.0], depths=[1], kernels=[3],
                    separable=[False, True], hidden=[0, 8])


def rl_config() -> NASConfig:
    return NASConfig(strategy="rl", space=SPACE, rl=RLConfig(lr=0.3),
                     proxy=DistillConfig(train=TrainConfig(epochs=1, progress=False)),
                     latency=LatencyConfig(warmup=0, repeats=2, large_batch=8))


def params_of(out) -> list[dict]:
    study = optuna.load_study(study_name="students", storage=f"sqlite:///{out / 'search.db'}")
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [t.params for t in sorted(done, key=lambda t: t.number)]


def test_an_interrupted_rl_search_resumes_to_the_same_trials(teacher_and_data, tmp_path, monkeypatch):
    teacher, loaders = teacher_and_data
    whole = search_students(teacher, loaders, rl_config(), tmp_path / "whole", n_trials=6)
    original = StudentObjective._proxy_accuracy
    calls = []

    def dies_on_the_fourth(self, model):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # a kill in the middle of a trial
        return original(self, model)

    monkeypatch.setattr(StudentObjective, "_proxy_accuracy", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        search_students(teacher, loaders, rl_config(), tmp_path / "cut", n_trials=6)
    monkeypatch.setattr(StudentObjective, "_proxy_accuracy", original)
    resumed = search_students(teacher, loaders, rl_config(), tmp_path / "cut", n_trials=6)
    assert params_of(tmp_path / "cut") == params_of(tmp_path / "whole")
    assert resumed.chosen["knobs"] == whole.chosen["knobs"] and resumed.chosen["accuracy"] == whole.chosen["accuracy"]
    controller = json.loads((tmp_path / "cut" / "controller.json").read_text())
    assert controller["rewards"] == json.loads((tmp_path / "whole" / "controller.json").read_text())["rewards"]
    assert len(controller["episodes"]) == 5  # the enqueued default student is not an episode


def test_rl_runs_in_one_process(teacher_and_data, tmp_path):
    from slimkit.errors import ConfigError

    teacher, loaders = teacher_and_data
    with pytest.raises(ConfigError, match="one process"):
        search_students(teacher, loaders, rl_config(), tmp_path, n_trials=2, workers=2)
