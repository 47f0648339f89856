"""Search workers on a real PostgreSQL server: several worker processes share one study, a worker
killed mid-trial loses no finished trial and its trial is run again, the best trial is the one
SQLite gives for the same seeds, and `slimkit search --storage postgresql://...` works.

The server: SLIMKIT_TEST_POSTGRES=postgresql://user:password@host:port/db (CI's .ci/run starts a
throwaway one), or SLIMKIT_TEST_POSTGRES=start to start a throwaway local one here (needs Debian's
postgresql package). Without it these tests skip, unless SLIMKIT_REQUIRE_POSTGRES=1 (CI): then they fail.
"""

import functools
import json
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest

from slimkit.errors import SlimkitError
from slimkit.search.workers import SamplerConfig, create_study, finished_trials, open_storage, run_workers, storage_url

sys.path.insert(0, str(Path(__file__).parent))  # spawned workers import the targets by module name
import _toy_worker
from _postgres_server import ThrowawayServer

SEEDS = SamplerConfig(name="random", seed=5)
TRIALS, WORKERS = 9, 3
HEARTBEAT = 2  # seconds; a trial without a heartbeat for 2 * HEARTBEAT is stale
State = optuna.trial.TrialState


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("SLIMKIT_TEST_POSTGRES")
    if not url:
        message = "SLIMKIT_TEST_POSTGRES is not set (a postgresql:// URL, or 'start' for a throwaway local server)"
        if os.environ.get("SLIMKIT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + "; SLIMKIT_REQUIRE_POSTGRES=1 makes this a failure")
        pytest.skip(message)
    if url != "start":
        yield url
        return
    server = ThrowawayServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def study_name(postgres_url):
    """A new study's name; the study is deleted afterwards (the database may be a developer's own)."""
    name = f"slimkit-test-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        optuna.delete_study(study_name=name, storage=open_storage(postgres_url))
    except KeyError:
        pass


def _outcome(study):
    """What must not depend on the storage: the parameters of the complete trials, and the best trial."""
    complete = study.get_trials(states=(State.COMPLETE,))
    return sorted(t.params["x"] for t in complete), study.best_trial.params, study.best_value


@pytest.fixture(scope="module")
def sqlite_reference(postgres_url, tmp_path_factory):
    """The same search (seeds, workers, trials) on SQLite."""
    url = storage_url(str(tmp_path_factory.mktemp("sqlite") / "search.db"))
    create_study(url, "reference", ["minimize"])
    run_workers(_toy_worker.quadratic, storage=url, study_name="reference", workers=WORKERS, n_trials=TRIALS,
                sampler=SEEDS)
    return _outcome(optuna.load_study(study_name="reference", storage=open_storage(url)))


def test_three_workers_share_one_study_and_find_what_sqlite_finds(postgres_url, study_name, sqlite_reference):
    create_study(postgres_url, study_name, ["minimize"])
    run_workers(_toy_worker.quadratic, storage=postgres_url, study_name=study_name, workers=WORKERS, n_trials=TRIALS,
                sampler=SEEDS)
    trials = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url)).trials
    assert sorted(t.number for t in trials) == list(range(TRIALS)) and {t.state for t in trials} == {State.COMPLETE}
    assert [sum(t.user_attrs["worker"] == i for t in trials) for i in range(WORKERS)] == [3, 3, 3]
    assert _outcome(optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))) == sqlite_reference


def _kill_when_the_others_are_done(marker: Path, url: str, study_name: str, killed: dict) -> None:
    """SIGKILL the worker that wrote its PID to ``marker`` once every other trial is complete
    (so that no live worker picks up its trial before the rerun does)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    give_up = time.time() + 90
    while time.time() < give_up:
        pid = marker.read_text().strip() if marker.is_file() else ""
        if pid and len(study.get_trials(deepcopy=False, states=(State.COMPLETE,))) == TRIALS - 1:
            os.kill(int(pid), signal.SIGKILL)
            killed["at"] = time.time()
            return
        time.sleep(0.1)


def test_a_worker_killed_mid_trial_loses_nothing_and_its_trial_is_run_again(postgres_url, study_name, tmp_path,
                                                                             sqlite_reference):
    create_study(postgres_url, study_name, ["minimize"])
    marker, killed = tmp_path / "victim.pid", {}
    killer = threading.Thread(target=_kill_when_the_others_are_done, args=(marker, postgres_url, study_name, killed))
    killer.start()
    doomed = functools.partial(_toy_worker.doomed, str(marker), 2, 3)  # worker 2 stops in its 3rd (last) trial
    try:
        with pytest.raises(SlimkitError, match=r"worker 2 \(exit code -9\) failed; the finished trials are kept"):
            run_workers(doomed, storage=postgres_url, study_name=study_name, workers=WORKERS, n_trials=TRIALS,
                        sampler=SEEDS, heartbeat=HEARTBEAT)
    finally:
        killer.join()
    assert "at" in killed, "the victim worker never reached its last trial"
    study = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
    finished = {t.number: (t.params, t.value) for t in study.get_trials(states=(State.COMPLETE,))}
    (victim,) = study.get_trials(states=(State.RUNNING,))  # killed: nothing could mark it
    assert len(finished) == TRIALS - 1 and "x" in victim.params

    # After the grace period, rerun as `slimkit search` does after an interruption: the missing trial.
    time.sleep(max(0.0, killed["at"] + 2 * HEARTBEAT + 0.5 - time.time()))
    run_workers(_toy_worker.quadratic, storage=postgres_url, study_name=study_name, workers=WORKERS,
                n_trials=TRIALS - len(finished_trials(study)), sampler=SEEDS, heartbeat=HEARTBEAT)
    study = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url))
    states = [t.state for t in study.trials]
    assert (states.count(State.COMPLETE), states.count(State.FAIL), len(states)) == (TRIALS, 1, TRIALS + 1)
    assert study.trials[victim.number].state == State.FAIL
    (retry,) = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == State.COMPLETE and retry.params == victim.params
    assert {n: (study.trials[n].params, study.trials[n].value) for n in finished} == finished  # none lost or changed
    assert _outcome(study) == sqlite_reference


def test_workers_opening_a_new_database_together_all_succeed(postgres_url):
    """Machines started together create Optuna's tables at the same moment: without a lock all but
    one fail on CREATE TABLE with a duplicate key."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"slimkit_fresh_{uuid.uuid4().hex[:10]}"
    admin = make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as connection:
        try:
            connection.execute(f"CREATE DATABASE {name}")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test database's user may not create databases")
        try:
            fresh = admin.set(database=name).render_as_string(hide_password=False)
            start, results = threading.Barrier(4), []

            def open_together():
                start.wait()
                try:
                    storage = open_storage(fresh)
                    storage.engine.dispose()
                    results.append("ok")
                except SlimkitError as exc:
                    results.append(exc.args[0])

            threads = [threading.Thread(target=open_together) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert results == ["ok"] * 4
        finally:
            connection.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_slimkit_search_runs_on_postgres(postgres_url, study_name, tmp_path, capsys):
    import torch
    import yaml

    from slimkit.cli import main
    from slimkit.export import save_model
    from slimkit.models import build_model

    torch.manual_seed(0)
    save_model(build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8), tmp_path / "teacher")
    stage = {"type": "search", "trials": 2, "sampler": {"name": "random"}, "remeasure": False,
             "space": {"stages": [2], "base_widths": [4, 8], "width_multipliers": [0.5, 1.0], "depths": [1], "kernels": [3],
                       "separable": [False], "hidden": [8]},
             "proxy": {"train": {"epochs": 1}}, "latency": {"warmup": 0, "repeats": 2, "large_batch": 8}}
    data = {"name": "synthetic", "batch_size": 16,
            "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 48, "test_size": 12}}
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({"name": "pg-search", "data": data, "model": {"run": str(tmp_path / "teacher")},
                                      "stages": [stage]}))
    out = tmp_path / "out"
    assert main(["search", str(recipe), "--storage", postgres_url, "--study", study_name, "--out", str(out),
                 "--no-train"]) == 0
    assert "Pareto front" in capsys.readouterr().out and not (out / "search.db").exists()
    trials = optuna.load_study(study_name=study_name, storage=open_storage(postgres_url)).trials
    assert [t.state for t in trials] == [State.COMPLETE] * 2
    assert json.loads((out / "front.json").read_text())["chosen"]["trial"] in (0, 1)
