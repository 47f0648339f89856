"""Search workers: independent processes that share one Optuna study through its storage.

Each worker is a fresh (spawned) process that loads the study, draws trials from its own sampler
(seeded ``seed + index``, so two workers never propose the same sequence) and writes every result
to the shared storage. Nothing is exchanged between workers except through the storage, so the
same worker runs unchanged on other machines against a database URL.

Storages: a SQLite file by default (``sqlite:///path.db``, or a bare ``*.db`` path); a journal
file (``journal:path`` or a ``*.log`` path), Optuna's recommendation for many processes on one
machine or NFS; or any database URL SQLAlchemy accepts (``postgresql://user@host/db``) to spread
workers over machines.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from slimkit.config import Config
from slimkit.errors import ConfigError, SlimkitError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PrunerConfig", "SamplerConfig", "build_pruner", "build_sampler", "create_study", "finished_trials",
    "open_storage", "run_workers", "split_trials", "storage_url",
]


class SamplerConfig(Config):
    """How trials are proposed: ``nsga2`` (multi-objective evolution), ``tpe`` or ``random``.
    NSGA-II and TPE rank infeasible trials last by the constraint values the objective sets with
    ``trial.set_constraint`` (Optuna >= 5)."""

    name: Literal["nsga2", "tpe", "random"] = "tpe"
    seed: int = 0
    population_size: int = Field(8, ge=2)
    startup_trials: int = Field(8, ge=0)


class PrunerConfig(Config):
    """When to stop a bad trial early, judged on the values it reports per epoch."""

    name: Literal["none", "median", "percentile", "hyperband", "successive_halving"] = "median"
    startup_trials: int = Field(2, ge=0)
    warmup_steps: int = Field(0, ge=0)
    percentile: float = Field(25.0, gt=0, lt=100)
    max_resource: int | None = Field(None, ge=1)


def storage_url(url: str | None, folder: str | Path = ".") -> str:
    """The storage URL to use: ``url`` as given, a bare ``.db`` path as a SQLite URL, and by
    default ``sqlite:///<folder>/search.db``.

    >>> storage_url(None, "/tmp/s"), storage_url("runs/x.db")[:10]
    ('sqlite:////tmp/s/search.db', 'sqlite:///')
    """
    if url is None:
        return f"sqlite:///{Path(folder).resolve() / 'search.db'}"
    if "://" not in url and not url.startswith("journal:") and url.endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{Path(url).resolve()}"
    return url


def _write_ahead_log(path: Path) -> None:
    """Switch the SQLite file to WAL journaling (a persistent setting of the file): readers no
    longer block the writer, which is most of what several workers do to one study."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=120) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    connection.close()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url`` (see the module docstring for the accepted forms)."""
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
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        _write_ahead_log(Path(url.split(":///", 1)[-1]))
        # Several processes write one SQLite file: wait for the lock rather than fail at once.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except Exception as exc:  # noqa: BLE001  (an unreachable server, a missing driver, a bad URL)
        raise ConfigError(f"cannot open the search storage {url}: {str(exc).splitlines()[0]}",
                          hint="check the URL, that the database is reachable, and that its driver is installed") from None


def build_sampler(config: SamplerConfig, *, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``config`` names, seeded ``config.seed + offset`` (``offset``: the worker index)."""
    import optuna

    seed = config.seed + offset
    if config.name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=config.population_size, seed=seed)
    if config.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=config.startup_trials, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def build_pruner(config: PrunerConfig) -> optuna.pruners.BasePruner:
    """The pruner ``config`` names."""
    import optuna

    if config.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.startup_trials, n_warmup_steps=config.warmup_steps)
    if config.name == "percentile":
        return optuna.pruners.PercentilePruner(config.percentile, n_startup_trials=config.startup_trials,
                                               n_warmup_steps=config.warmup_steps)
    if config.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.max_resource or "auto")
    if config.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    return optuna.pruners.NopPruner()


def create_study(storage: str, study_name: str, directions: Sequence[str], *,
                 sampler: SamplerConfig | None = None, pruner: PrunerConfig | None = None) -> optuna.Study:
    """Create the study (or load it: a rerun resumes it). Create it once, before starting
    workers: concurrent first-time creation races on the database schema."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=open_storage(storage), study_name=study_name, directions=list(directions), load_if_exists=True,
        sampler=build_sampler(sampler or SamplerConfig()), pruner=build_pruner(pruner or PrunerConfig(name="none")),
    )
    if [d.name.lower() for d in study.directions] != [d.lower() for d in directions]:
        raise ConfigError(f"study '{study_name}' in {storage} optimizes {[d.name.lower() for d in study.directions]}, "
                          f"not {list(directions)}", hint="use another study name or storage for another search")
    return study


def finished_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's complete and pruned trials (failed and running ones are not results)."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def split_trials(total: int | None, workers: int) -> list[int | None]:
    """Share ``total`` trials among ``workers`` so that they add up exactly.

    >>> split_trials(7, 3), split_trials(None, 2)
    ([3, 2, 2], [None, None])
    """
    if total is None:
        return [None] * workers
    return [total // workers + (i < total % workers) for i in range(workers)]


def _waiting(storage: str, study_name: str) -> int:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


#: ``target(worker_index)`` returns the objective, or ``(objective, study callbacks)``.
Target = Callable[[int], Any]


def _worker(index: int, target: Target, storage: str, study_name: str, n_trials: int | None,
            deadline: float | None, sampler: dict[str, Any], pruner: dict[str, Any], threads: int | None) -> None:
    import optuna

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage),
                              sampler=build_sampler(SamplerConfig(**sampler), offset=index),
                              pruner=build_pruner(PrunerConfig(**pruner)))
    made = target(index)
    objective, callbacks = made if isinstance(made, tuple) else (made, [])
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    if n_trials == 0 or timeout == 0.0:
        return
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=list(callbacks))


def _in_process(target: Target, args: tuple[str, str], n_trials: int | None, deadline: float | None,
                specs: tuple[Any, ...]) -> None:
    """Run a worker in this process, leaving torch's thread count as it was."""
    before = None
    if specs[2] is not None:
        import torch

        before = torch.get_num_threads()
    try:
        _worker(0, target, *args, n_trials, deadline, *specs)
    finally:
        if before is not None:
            torch.set_num_threads(before)


def run_workers(target: Target, *, storage: str, study_name: str, workers: int = 1, n_trials: int | None = None,
                timeout: float | None = None, sampler: SamplerConfig | None = None,
                pruner: PrunerConfig | None = None, threads: int | None = None) -> None:
    """Run ``n_trials`` (shared out exactly) in ``workers`` processes on the existing study
    ``study_name`` in ``storage``, for at most ``timeout`` seconds from now.

    ``target`` must be picklable (a module-level function or a ``functools.partial`` of one):
    each spawned worker calls ``target(index)`` to build its objective. One worker runs in this
    process. Raises SlimkitError naming the workers that failed.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", hint="use --workers 1 or more")
    if n_trials is None and timeout is None:
        raise ConfigError("a search needs n_trials or a timeout (or both)", hint="pass --trials N or --timeout S")
    deadline = None if timeout is None else time.time() + timeout
    args = (storage_url(storage), study_name)
    specs = ((sampler or SamplerConfig()).to_dict(), (pruner or PrunerConfig(name="none")).to_dict(), threads)
    if workers > 1 and n_trials is not None:
        # Enqueued trials run here first: claiming a waiting trial is a read-then-write that
        # SQLite (through Python's sqlite3) does not isolate, so two workers could both run it.
        waiting = _waiting(args[0], study_name)
        if waiting:
            _in_process(target, args, min(waiting, n_trials), deadline, specs)
            n_trials -= min(waiting, n_trials)
            if n_trials == 0:
                return
    shares = split_trials(n_trials, workers)
    if workers == 1:
        _in_process(target, args, shares[0], deadline, specs)
        return
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools can deadlock
    procs = [context.Process(target=_worker, args=(i, target, *args, shares[i], deadline, *specs),
                             name=f"slimkit-search-worker-{i}") for i in range(workers)]
    env_before = os.environ.get("OMP_NUM_THREADS")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read at the workers' torch import
    try:
        for proc in procs:
            proc.start()
    finally:
        if threads is not None:
            if env_before is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = env_before
    try:
        for proc in procs:
            proc.join()
    except BaseException:  # Ctrl-C or a kill: take the workers down with us, their trials are stored
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in procs:
            proc.join(10)
        raise
    failed = [f"worker {i} (exit code {p.exitcode})" for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise SlimkitError(f"search {', '.join(failed)} failed; the finished trials are kept in {args[0]}",
                           hint="read the worker's traceback above; rerun the same command to continue the study")
