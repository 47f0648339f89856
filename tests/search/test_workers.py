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
    create_study,
    open_storage,
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


def test_configuration_errors(tmp_path):
    assert split_trials(5, 2) == [3, 2]
    with pytest.raises(ConfigError, match="needs n_trials or a timeout"):
        run_workers(_toy_worker.quadratic, storage="x.db", study_name="s")
    with pytest.raises(ConfigError, match="neither a database URL"):
        open_storage(str(tmp_path / "s.txt"))
    create_study(storage_url(None, tmp_path), "dir", ["minimize"])
    with pytest.raises(ConfigError, match="optimizes \\['minimize'\\]"):
        create_study(storage_url(None, tmp_path), "dir", ["maximize"])
    assert isinstance(PrunerConfig(name="hyperband").name, str)
