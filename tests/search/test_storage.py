"""Study storages without a server: URL forms, the PostgreSQL driver check, masked passwords,
one-line errors, and the heartbeat that notices a dead worker's trial (SQLite)."""

import socket
import sys

import optuna
import pytest

from slimkit.errors import ConfigError
from slimkit.search.storage import database_url, open_storage, shown_url, storage_url


def test_postgres_urls_name_psycopg3_and_other_urls_are_kept(tmp_path):
    assert database_url("postgresql://ann@db.lan:5433/search") == "postgresql+psycopg://ann@db.lan:5433/search"
    assert database_url("postgres://ann@db.lan/search") == "postgresql+psycopg://ann@db.lan/search"
    assert database_url("postgresql+psycopg2://ann@db.lan/search") == "postgresql+psycopg2://ann@db.lan/search"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert storage_url(str(tmp_path / "s.sqlite")) == f"sqlite:///{tmp_path / 's.sqlite'}"
    assert storage_url("postgresql://h/d", tmp_path) == "postgresql://h/d"


def test_passwords_are_masked_in_what_is_shown():
    assert shown_url("postgresql://ann:s3cret@db.lan/search") == "postgresql://ann:***@db.lan/search"
    assert shown_url("postgresql://ann@db.lan/search") == "postgresql://ann@db.lan/search"
    assert shown_url("journal:runs/s.log") == "journal:runs/s.log"


def test_a_missing_driver_is_one_line_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed: importing it fails
    with pytest.raises(ConfigError) as caught:
        open_storage("postgresql://ann:s3cret@127.0.0.1:5432/search")
    message = caught.value.args[0]
    assert "database driver is not installed" in message and "Failed to import" not in message
    assert "slimkit[postgres]" in caught.value.hint and "s3cret" not in message and "\n" not in message
    with pytest.raises(ConfigError, match="not a database URL SQLAlchemy knows"):
        open_storage("nosuchdb://host/db")


def test_an_unreachable_server_is_one_line_without_the_password():
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError) as caught:
        open_storage(f"postgresql://ann:s3cret@127.0.0.1:{port}/search")
    message = caught.value.args[0]
    assert f"cannot open the search storage postgresql://ann:***@127.0.0.1:{port}/search:" in message
    assert "s3cret" not in message and "\n" not in message and ("refused" in message or "failed" in message)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage")
def test_a_dead_workers_trial_is_failed_and_queued_again(tmp_path):
    """A RUNNING trial whose heartbeat stopped (its worker was killed) becomes FAIL after the
    grace period, and one copy with the same parameters waits to be run."""
    import time

    url = storage_url(str(tmp_path / "s.db"))
    study = optuna.create_study(storage=open_storage(url, heartbeat=1), study_name="hb")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.record_heartbeat(trial._trial_id)  # what the worker's heartbeat thread does, then it "dies"
    optuna.storages.fail_stale_trials(study)
    assert [t.state.name for t in study.get_trials()] == ["RUNNING"]  # within the grace period it may be alive
    time.sleep(2 * 1 + 1.1)  # SQLite's clock has whole seconds
    optuna.storages.fail_stale_trials(study)
    failed, retry = study.get_trials()
    assert (failed.state.name, retry.state.name) == ("FAIL", "WAITING")
    assert retry.params == failed.params and retry.system_attrs["failed_trial"] == failed.number
