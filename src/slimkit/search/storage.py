"""Where a search study lives: a SQLite file, a journal file, or a database server.

Accepted forms (see :func:`storage_url` and :func:`open_storage`):

- a bare ``*.db`` path or ``sqlite:///path.db``: one machine, several processes (write-ahead log);
- ``journal:path`` or a ``*.log`` path: Optuna's journal file, for many processes on one machine or NFS;
- ``postgresql://user@host:port/db``: one PostgreSQL database shared by workers on several machines,
  through psycopg 3 (``pip install 'slimkit[postgres]'``); any other SQLAlchemy URL whose
  driver is installed works too. Keep passwords out of the URL: libpq reads ``PGPASSWORD`` and
  ``~/.pgpass``. See docs/search-storage.md.

Database storages record a heartbeat for every running trial. A trial whose worker died (killed,
out of memory, its machine lost) stops beating; the next worker to start a trial after the grace
period marks it FAIL and queues it again, once, with the same parameters.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slimkit.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["HEARTBEAT_SECONDS", "database_url", "open_storage", "shown_url", "storage_url"]

#: Seconds between a running trial's heartbeats; after twice as long without one, it is stale.
HEARTBEAT_SECONDS = 60
#: How often a trial whose worker died is queued again (a trial that kills every worker is not retried forever).
RETRIES = 1
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_LOCK = 0x736C696D6B6974  # any fixed number: the advisory lock taken while creating the tables
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def storage_url(url: str | None, folder: str | Path = ".") -> str:
    """The storage URL to use: ``url`` as given, a bare ``.db`` path as a SQLite URL, and by
    default ``sqlite:///<folder>/search.db``.

    >>> storage_url(None, "/tmp/s"), storage_url("runs/x.db")[:10]
    ('sqlite:////tmp/s/search.db', 'sqlite:///')
    """
    if url is None:
        return f"sqlite:///{Path(folder).resolve() / 'search.db'}"
    if "://" not in url and not url.startswith("journal:") and url.endswith(_SQLITE_SUFFIXES):
        return f"sqlite:///{Path(url).resolve()}"
    return url


def shown_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs.

    >>> shown_url("postgresql://ann:secret@db.lan:5432/search")
    'postgresql://ann:***@db.lan:5432/search'
    """
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://..."


def database_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` and ``postgres://`` (libpq's spellings)
    name psycopg 3, which SQLAlchemy would otherwise take to mean psycopg2.

    >>> database_url("postgres://ann@db.lan/search"), database_url("postgresql+psycopg2://h/d")
    ('postgresql+psycopg://ann@db.lan/search', 'postgresql+psycopg2://h/d')
    """
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def _check_driver(url: str, shown: str) -> None:
    """Fail with one line when the database in ``url`` (``shown`` in messages) is unknown or its
    driver is missing, before Optuna reports "Failed to import DB access module"."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(f"storage {shown}: not a database URL SQLAlchemy knows ({str(exc).splitlines()[0]})",
                          hint="use sqlite:///search.db, journal:search.log or postgresql://user@host/db") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        if parsed.get_backend_name() == "postgresql":
            hint = "pip install 'slimkit[postgres]' (psycopg 3), or pip install 'psycopg[binary]'"
        else:
            hint = f"install the Python driver '{parsed.get_driver_name()}' for {parsed.get_backend_name()}"
        raise ConfigError(f"storage {shown}: its database driver is not installed ({exc.name or exc})",
                          hint=hint) from None


def _write_ahead_log(path: Path) -> None:
    """Switch the SQLite file to WAL journaling (a persistent setting of the file): readers no
    longer block the writer, which is most of what several workers do to one study."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=120) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite:"):
        # Several processes write one SQLite file: wait for the lock rather than fail at once.
        return {"connect_args": {"timeout": 120}}
    if url.startswith("postgresql"):
        # An unreachable server fails in seconds instead of hanging; a connection dropped while a
        # long trial trained is replaced before use.
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


@contextmanager
def _schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while Optuna creates its tables: workers that open a new
    database at the same moment (several machines started together) otherwise collide on
    CREATE TABLE and all but one fail with a duplicate key error."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK})
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK})
    finally:
        engine.dispose()


def _heartbeat_kwargs(heartbeat: int | None) -> dict[str, Any]:
    if heartbeat is None:
        return {}
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return {"heartbeat_interval": heartbeat, "grace_period": 2 * heartbeat,
            "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=RETRIES)}


def open_storage(url: str, *, heartbeat: int | None = None) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring for the accepted forms).

    ``heartbeat`` (seconds; database storages only) turns on the detection of trials whose
    worker died: they are failed and queued again after ``2 * heartbeat`` seconds of silence.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    url = storage_url(url)
    if url.startswith("journal:") or ("://" not in url and url.endswith((".log", ".journal"))):
        path = Path(url.removeprefix("journal:")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise ConfigError(f"storage '{url}' is neither a database URL nor a .db/.log file",
                          hint="use sqlite:///search.db, search.db, journal:search.log or postgresql://user@host/db")
    shown, url = shown_url(url), database_url(url)
    _check_driver(url, shown)
    if url.startswith("sqlite:"):
        _write_ahead_log(Path(url.split(":///", 1)[-1]))
    engine_kwargs = _engine_kwargs(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats are "experimental"
            with _schema_lock(url, engine_kwargs):
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **_heartbeat_kwargs(heartbeat))
    except Exception as exc:  # noqa: BLE001  (an unreachable server, refused credentials, a bad URL)
        raise ConfigError(f"cannot open the search storage {shown}: {_first_line(exc)}",
                          hint="check the URL, that the database server is reachable, and the credentials "
                               "(PGPASSWORD or ~/.pgpass for PostgreSQL)") from None


def _first_line(exc: BaseException) -> str:
    """The first informative line of a (SQLAlchemy-wrapped) database error."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__
