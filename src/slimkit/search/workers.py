"""Search workers: independent processes that share one Optuna study through its storage.

Each worker is a fresh (spawned) process that loads the study, draws trials from its own sampler
(seeded ``seed + index``, so two workers never propose the same sequence) and writes every result
to the shared storage. Nothing is exchanged between workers except through the storage, so the
same worker runs unchanged on other machines against a database URL (the storages are described
in :mod:`slimkit.search.storage` and docs/search-storage.md).

:func:`run_workers` plans first (:func:`plan_work`: which trials run in this process, how many
each worker runs), then does: starts the workers, watches them, and collects their exit codes.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from slimkit.config import Config, Seed, derive_seed
from slimkit.errors import ConfigError, SlimkitError
from slimkit.search.storage import HEARTBEAT_SECONDS, open_storage, shown_url, storage_url

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PrunerConfig", "SamplerConfig", "WorkPlan", "WorkerSettings", "build_pruner", "build_sampler", "create_study",
    "finished_trials", "open_storage", "plan_work", "run_workers", "split_trials", "storage_url",
]


class SamplerConfig(Config):
    """How trials are proposed: ``nsga2`` (multi-objective evolution), ``tpe`` or ``random``.
    NSGA-II and TPE rank infeasible trials last by the constraint values the objective sets with
    ``trial.set_constraint`` (Optuna >= 5)."""

    name: Literal["nsga2", "tpe", "random"] = "tpe"
    seed: Seed = 0
    population_size: int = Field(8, ge=2)
    startup_trials: int = Field(8, ge=0)


class PrunerConfig(Config):
    """When to stop a bad trial early, judged on the values it reports per epoch."""

    name: Literal["none", "median", "percentile", "hyperband", "successive_halving"] = "median"
    startup_trials: int = Field(2, ge=0)
    warmup_steps: int = Field(0, ge=0)
    percentile: float = Field(25.0, gt=0, lt=100)
    max_resource: int | None = Field(None, ge=1)


def build_sampler(config: SamplerConfig, *, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler ``config`` names, seeded ``config.seed + offset`` (``offset``: the worker index)."""
    import optuna

    seed = derive_seed(config.seed, offset)
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


#: ``target(worker_index)`` returns the objective, or ``(objective, study callbacks)``.
Target = Callable[[int], Any]


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker of one run shares (picklable: it travels to the spawned workers).

    ``stop_at``: the number of finished trials in the study at which every worker stops, whoever
    ran them, so that machines started together on one study do not each run the whole budget.
    """

    storage: str
    study_name: str
    deadline: float | None
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    threads: int | None
    heartbeat: int | None
    stop_at: int | None


@dataclass(frozen=True)
class WorkPlan:
    """What runs where: first ``queued`` trials in this process (the study's waiting trials), then
    ``shares[i]`` trials in worker ``i`` (None: until the deadline). Without ``spawn`` the one
    worker runs in this process; spawned workers whose share is 0 are not started."""

    queued: int
    shares: list[int | None]
    spawn: bool


def plan_work(workers: int, n_trials: int | None, waiting: int = 0) -> WorkPlan:
    """Plan ``n_trials`` (None: as many as the time allows) over ``workers`` processes, given
    ``waiting`` queued trials in the study.

    With several workers the queued trials run here first: claiming a waiting trial is a
    read-then-write that SQLite (through Python's sqlite3) does not isolate, so two workers
    could both run it.

    >>> plan_work(3, 7)
    WorkPlan(queued=0, shares=[3, 2, 2], spawn=True)
    >>> plan_work(3, 4, waiting=2), plan_work(1, 5, waiting=2)
    (WorkPlan(queued=2, shares=[1, 1, 0], spawn=True), WorkPlan(queued=0, shares=[5], spawn=False))
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", hint="use --workers 1 or more")
    queued = min(waiting, n_trials) if workers > 1 and n_trials is not None else 0
    rest = None if n_trials is None else n_trials - queued
    return WorkPlan(queued, split_trials(rest, workers), spawn=workers > 1)


def _study_counts(storage: str, study_name: str, heartbeat: int | None) -> tuple[int, int]:
    """(waiting, finished) trials of the study, after failing the trials whose worker died: such
    a trial is queued again there, so it counts as waiting and runs first."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage, heartbeat=heartbeat))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    return len(waiting), len(finished_trials(study))


def _worker(index: int, target: Target, settings: WorkerSettings, n_trials: int | None) -> None:
    """One worker: load the study with this worker's sampler and run ``n_trials`` of it."""
    import optuna

    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=settings.study_name,
                              storage=open_storage(settings.storage, heartbeat=settings.heartbeat),
                              sampler=build_sampler(SamplerConfig(**settings.sampler), offset=index),
                              pruner=build_pruner(PrunerConfig(**settings.pruner)))
    made = target(index)
    objective, callbacks = made if isinstance(made, tuple) else (made, [])
    callbacks = list(callbacks)
    if settings.stop_at is not None:
        done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callbacks.append(optuna.study.MaxTrialsCallback(settings.stop_at, states=done))
    timeout = None if settings.deadline is None else max(0.0, settings.deadline - time.time())
    if n_trials == 0 or timeout == 0.0:
        return
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks)


def _run_here(target: Target, settings: WorkerSettings, n_trials: int | None) -> None:
    """Run worker 0 in this process, leaving torch's thread count as it was."""
    before = None
    if settings.threads is not None:
        import torch

        before = torch.get_num_threads()
    try:
        _worker(0, target, settings, n_trials)
    finally:
        if before is not None:
            torch.set_num_threads(before)


@contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    """Set OMP_NUM_THREADS (read at the workers' torch import) while they start, then restore it."""
    before = os.environ.get("OMP_NUM_THREADS")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        if threads is not None:
            if before is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = before


def _start(target: Target, settings: WorkerSettings, shares: list[int | None]) -> dict[int, Any]:
    """Spawn one process per worker that has trials to run, keyed by worker index."""
    context = multiprocessing.get_context("spawn")  # fork after torch's thread pools can deadlock
    procs = {i: context.Process(target=_worker, args=(i, target, settings, share), name=f"slimkit-search-worker-{i}")
             for i, share in enumerate(shares) if share != 0}
    with _omp_threads(settings.threads):
        for proc in procs.values():
            proc.start()
    return procs


def _watch(procs: dict[int, Any]) -> None:
    """Wait for every worker; on Ctrl-C or a kill take them down with us (their trials are stored)."""
    try:
        for proc in procs.values():
            proc.join()
    except BaseException:
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in procs.values():
            proc.join(10)
        raise


def _collect(procs: dict[int, Any], storage: str) -> None:
    """Raise SlimkitError naming the workers that did not exit cleanly."""
    failed = [f"worker {i} (exit code {p.exitcode})" for i, p in procs.items() if p.exitcode != 0]
    if failed:
        raise SlimkitError(f"search {', '.join(failed)} failed; the finished trials are kept in {shown_url(storage)}",
                           hint="read the worker's traceback above; rerun the same command to continue the study")


def run_workers(target: Target, *, storage: str, study_name: str, workers: int = 1, n_trials: int | None = None,
                timeout: float | None = None, sampler: SamplerConfig | None = None,
                pruner: PrunerConfig | None = None, threads: int | None = None,
                heartbeat: int | None = HEARTBEAT_SECONDS) -> None:
    """Run ``n_trials`` (shared out exactly) in ``workers`` processes on the existing study
    ``study_name`` in ``storage``, for at most ``timeout`` seconds from now.

    ``target`` must be picklable (a module-level function or a ``functools.partial`` of one):
    each spawned worker calls ``target(index)`` to build its objective. One worker runs in this
    process. On a database storage a trial whose worker died is failed after ``2 * heartbeat``
    seconds without a heartbeat, and queued again. Raises SlimkitError naming the workers that failed.
    """
    if n_trials is None and timeout is None:
        raise ConfigError("a search needs n_trials or a timeout (or both)", hint="pass --trials N or --timeout S")
    plan_work(workers, n_trials)  # a bad worker count is refused before the storage is opened
    deadline = None if timeout is None else time.time() + timeout
    url = storage_url(storage)
    waiting, finished = (0, 0) if n_trials is None else _study_counts(url, study_name, heartbeat)
    settings = WorkerSettings(url, study_name, deadline,
                              (sampler or SamplerConfig()).to_dict(), (pruner or PrunerConfig(name="none")).to_dict(),
                              threads, heartbeat, None if n_trials is None else finished + n_trials)
    plan = plan_work(workers, n_trials, waiting)
    if plan.queued:
        _run_here(target, settings, plan.queued)
    if not plan.spawn:
        _run_here(target, settings, plan.shares[0])
        return
    procs = _start(target, settings, plan.shares)
    _watch(procs)
    _collect(procs, url)
