"""K worker processes share one Optuna study: no duplicate and no lost trials, any storage."""

import sys
import time
from pathlib import Path

import optuna
import pytest

from slimkit.errors import ConfigError, SlimkitError
from slimkit.search.workers import (
    PrunerConfig,
    SamplerConfig,
    WorkPlan,
    create_study,
    open_storage,
    plan_work,
    run_workers,
    split_trials,
    storage_url,
)

sys.path.insert(0, str(Path(__file__).parent))  # spawned workers import the targets by module name
import _toy_worker


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, kind):
    url = storage_url(str(tmp_path / "s.db")) if kind == "sqlite" else f"journal:{tmp_path / 's.log'}"
    create_study(url, "toy", ["minimize"])
    run_workers(_toy_worker.quadratic, storage=url, study_name="toy", workers=2, n_trials=9,
                sampler=SamplerConfig(name="random", seed=5))
    trials = optuna.load_study(study_name="toy", storage=open_storage(url)).get_trials()
    assert len(trials) == 9 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(9))
    assert len({t.params["x"] for t in trials}) == 9  # workers are seeded differently: no duplicates
    by_worker = [sum(t.user_attrs["worker"] == i for t in trials) for i in (0, 1)]
    assert by_worker == [5, 4]


def test_timeout_is_respected(tmp_path):
    url = storage_url(None, tmp_path)
    create_study(url, "slow", ["minimize"])
    start = time.perf_counter()
    run_workers(_toy_worker.slow, storage=url, study_name="slow", workers=1, timeout=1.0)
    elapsed = time.perf_counter() - start
    done = len(optuna.load_study(study_name="slow", storage=url).trials)
    assert 1.0 <= elapsed < 1.0 + 0.4 + 0.5 and 2 <= done <= 4


def test_a_failing_worker_is_named_and_the_others_results_kept(tmp_path):
    url = f"journal:{tmp_path / 'c.log'}"
    create_study(url, "crash", ["minimize"])
    with pytest.raises(SlimkitError, match=r"worker 1 \(exit code 3\) failed"):
        run_workers(_toy_worker.crash, storage=url, study_name="crash", workers=2, n_trials=4)
    complete = optuna.load_study(study_name="crash", storage=open_storage(url)).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2


def test_workers_stop_once_the_study_has_its_trials_whoever_ran_them(tmp_path):
    """Machines started together on one study each plan the whole budget; every worker stops
    when the study holds that many finished trials, its own or others'."""
    url = storage_url(str(tmp_path / "s.db"))
    create_study(url, "cap", ["minimize"])

    def target(index):
        def objective(trial):
            x = trial.suggest_float("x", 0.0, 1.0)
            if trial.number == 0:  # meanwhile another machine finishes three trials
                for value in (0.1, 0.2, 0.3):
                    trial.study.add_trial(optuna.create_trial(
                        params={"x": value}, distributions={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
                        value=value))
            return x

        return objective

    run_workers(target, storage=url, study_name="cap", workers=1, n_trials=5)
    trials = optuna.load_study(study_name="cap", storage=open_storage(url)).trials
    assert len(trials) == 5 and {t.state.name for t in trials} == {"COMPLETE"}  # 2 run here, not 5


def test_configuration_errors(tmp_path):
    assert split_trials(5, 2) == [3, 2]
    assert plan_work(2, 3, waiting=5) == WorkPlan(queued=3, shares=[0, 0], spawn=True)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        run_workers(_toy_worker.quadratic, storage="x.db", study_name="s", workers=0, n_trials=1)
    with pytest.raises(ConfigError, match="needs n_trials or a timeout"):
        run_workers(_toy_worker.quadratic, storage="x.db", study_name="s")
    with pytest.raises(ConfigError, match="neither a database URL"):
        open_storage(str(tmp_path / "s.txt"))
    create_study(storage_url(None, tmp_path), "dir", ["minimize"])
    with pytest.raises(ConfigError, match="optimizes \\['minimize'\\]"):
        create_study(storage_url(None, tmp_path), "dir", ["maximize"])
    assert isinstance(PrunerConfig(name="hyperband").name, str)
