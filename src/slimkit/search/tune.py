"""Hyperparameter tuning with Optuna: a time budget, early pruning of bad trials, and the best
result so far always on disk.

``tune(objective, params, ...)`` draws ``params`` (a dict of :class:`ParamSpec`) for each trial
and calls ``objective(values, trial)``, which returns the validation score (or a
:class:`TrialOutcome` holding the score and the trained model). Training objectives report
their validation accuracy after every epoch through :class:`TrialReporter`, a Trainer
callback, so Optuna's pruner can stop a clearly bad trial early, and a trial still running when
the time budget ends stops at its next epoch. After each finished trial :class:`BestKeeper`
writes ``best.json`` (and the best model) atomically when it beats the best on disk: a search
that is interrupted or runs out of time leaves its best result saved.
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import model_validator
from torch import nn

from slimkit.config import Config
from slimkit.errors import ConfigError
from slimkit.fileio import atomic_write_json
from slimkit.search.workers import (
    PrunerConfig,
    SamplerConfig,
    create_study,
    finished_trials,
    run_workers,
    storage_url,
)
from slimkit.train import Callback

if TYPE_CHECKING:
    import optuna

__all__ = ["BestKeeper", "ParamSpec", "TrialOutcome", "TrialReporter", "TuneResult", "read_best", "suggest_params", "tune"]


class ParamSpec(Config):
    """One tuned value: ``float``/``int`` in ``[low, high]`` (``log`` scale, ``step``) or one of ``choices``.

    >>> ParamSpec(type="float", low=1, high=8, log=True).type, ParamSpec(type="categorical", choices=["kd", "dkd"]).choices
    ('float', ['kd', 'dkd'])
    >>> ParamSpec(type="float", low=2, high=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slimkit.errors.ConfigError: ParamSpec: ...low (2.0) must be below high (1.0)...
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        elif self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        elif self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        elif self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0, got {self.low}")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        """Draw this parameter from ``trial`` under ``name``."""
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)  # type: ignore[arg-type]
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))  # type: ignore[arg-type]
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)  # type: ignore[arg-type]


def suggest_params(trial: optuna.Trial, params: Mapping[str, ParamSpec | Mapping[str, Any]]) -> dict[str, Any]:
    """Draw every parameter of ``params`` (specs or plain dicts) from ``trial``."""
    return {name: (spec if isinstance(spec, ParamSpec) else ParamSpec.from_dict(dict(spec))).suggest(trial, name)
            for name, spec in params.items()}


@dataclass
class TrialOutcome:
    """What an objective may return instead of a bare score: the model to keep if it is the best,
    and JSON-able ``info`` stored with the trial."""

    value: float
    model: nn.Module | None = None
    info: dict[str, Any] = field(default_factory=dict)


class TrialReporter(Callback):
    """Report ``metric`` (val_acc) to the Optuna trial after each epoch; stop the trial when the
    pruner says so, or when ``deadline`` (a ``time.time()`` value; by default the search's time
    budget, which :func:`tune` stores as the trial's ``deadline`` attribute) has passed."""

    def __init__(self, trial: optuna.Trial, *, metric: str = "val_acc", deadline: float | None = None) -> None:
        self.trial, self.metric, self.deadline = trial, metric, deadline

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None:
        import optuna

        value = metrics.get(self.metric)
        if value is None:
            raise ConfigError(f"TrialReporter: the epoch metrics have no '{self.metric}'",
                              hint="pass a val_loader so the Trainer measures val_acc")
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.metric}={value:.4f}")
        deadline = self.deadline if self.deadline is not None else self.trial.user_attrs.get("deadline")
        if deadline is not None and time.time() > deadline:
            raise optuna.TrialPruned(f"the time budget ran out during epoch {epoch}")


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # workers on this machine update best.json one at a time
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_best(folder: str | Path) -> dict[str, Any] | None:
    """The ``best.json`` a search left in ``folder``, or None."""
    import json

    path = Path(folder) / "best.json"
    return json.loads(path.read_text()) if path.is_file() else None


class BestKeeper:
    """An Optuna study callback that keeps the best finished trial in ``folder``: ``best.json``
    (trial number, value, params, info) and, when the objective returned one, the model in
    ``trial-<n>/`` (slimkit's serializer). ``best.json`` is replaced atomically and only after
    the model folder is complete, so it always names a whole result."""

    def __init__(self, folder: str | Path, *, direction: str = "maximize") -> None:
        self.folder, self.direction = Path(folder), direction
        self._pending: dict[int, TrialOutcome] = {}

    def stash(self, number: int, outcome: TrialOutcome) -> None:
        """Hold ``outcome`` of trial ``number`` until the trial is recorded as finished."""
        self._pending[number] = outcome

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        import optuna

        outcome = self._pending.pop(trial.number, None)
        if trial.state != optuna.trial.TrialState.COMPLETE or trial.value is None:
            return
        with _locked(self.folder / "best.lock"):
            best = read_best(self.folder)
            if best is not None and not self._better(trial.value, best["value"]):
                return
            info = {k: v for k, v in trial.user_attrs.items() if k != "deadline"}
            record: dict[str, Any] = {"trial": trial.number, "value": trial.value, "params": trial.params,
                                      "info": info, "study": study.study_name, "model": None}
            if outcome is not None and outcome.model is not None:
                from slimkit.export.serialize import save_model

                name = f"trial-{trial.number}"
                try:
                    save_model(outcome.model, self.folder / name)
                    record["model"] = name
                except Exception as exc:  # noqa: BLE001  (any saver failure: keep the params and say why)
                    shutil.rmtree(self.folder / name, ignore_errors=True)
                    record["model_error"] = f"{type(exc).__name__}: {exc}"
            atomic_write_json(self.folder / "best.json", record)
            for old in self.folder.glob("trial-*"):
                if old.name != record["model"]:
                    shutil.rmtree(old, ignore_errors=True)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.direction == "maximize" else value < than


Objective = Callable[[dict[str, Any], "optuna.Trial"], "float | TrialOutcome"]


class _Target:
    """Builds one worker's Optuna objective and callbacks (picklable for spawned workers)."""

    def __init__(self, objective: Objective, params: dict[str, Any], folder: Path, direction: str,
                 deadline: float | None) -> None:
        self.objective, self.params, self.folder = objective, params, folder
        self.direction, self.deadline = direction, deadline

    def __call__(self, index: int) -> tuple[Callable[[optuna.Trial], float], list[Any]]:
        keeper = BestKeeper(self.folder, direction=self.direction)

        def run(trial: optuna.Trial) -> float:
            values = suggest_params(trial, self.params)
            trial.set_user_attr("deadline", self.deadline)
            outcome = self.objective(values, trial)
            if not isinstance(outcome, TrialOutcome):
                outcome = TrialOutcome(float(outcome))
            for key, value in outcome.info.items():
                trial.set_user_attr(key, value)
            keeper.stash(trial.number, outcome)
            return float(outcome.value)

        return run, [keeper]


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the best trial (read back from ``best.json``) and counts."""

    best: dict[str, Any] | None
    complete: int
    pruned: int
    failed: int
    folder: Path
    storage: str
    study_name: str


def tune(objective: Objective, params: Mapping[str, ParamSpec | Mapping[str, Any]], out_dir: str | Path, *,
         direction: str = "maximize", n_trials: int | None = 20, timeout: float | None = None,
         storage: str | None = None, study_name: str = "tune", workers: int = 1,
         sampler: SamplerConfig | None = None, pruner: PrunerConfig | None = None,
         enqueue: list[dict[str, Any]] | None = None) -> TuneResult:
    """Tune ``params`` for ``objective`` (see the module docstring) and return the best trial.

    The study lives in ``storage`` (default: ``out_dir/search.db``), so rerunning resumes it and
    ``workers`` processes can share it (then ``objective`` must be picklable). With a
    ``postgresql://`` storage, machines share it too (docs/search-storage.md); each one's
    ``best.json`` then holds the best of the trials that it ran. ``n_trials``
    counts the study's finished (complete or pruned) trials, earlier runs included, so a rerun
    after an interruption only runs what is missing. ``timeout`` is
    the time budget in seconds; ``enqueue`` lists parameter sets to try first (e.g. the
    hand-picked defaults, so tuning can only improve on them).

    >>> import tempfile
    >>> r = tune(lambda p, t: -(p["x"] - 2) ** 2, {"x": {"type": "float", "low": 0, "high": 4}},
    ...          tempfile.mkdtemp(), n_trials=8, enqueue=[{"x": 2.0}])
    >>> r.best["params"], r.complete
    ({'x': 2.0}, 8)
    """
    import optuna

    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    specs = {name: spec if isinstance(spec, ParamSpec) else ParamSpec.from_dict(dict(spec), source=f"params.{name}")
             for name, spec in params.items()}
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage_url(storage, folder)
    study = create_study(url, study_name, [direction], sampler=sampler, pruner=pruner)
    for values in enqueue or []:
        study.enqueue_trial(values, skip_if_exists=True)
    deadline = None if timeout is None else time.time() + timeout
    target = _Target(objective, specs, folder, direction, deadline)
    remaining = None if n_trials is None else max(0, n_trials - len(finished_trials(study)))
    if remaining != 0:  # a rerun of a finished study only reads its result
        run_workers(target, storage=url, study_name=study_name, workers=workers, n_trials=remaining,
                    timeout=timeout, sampler=sampler, pruner=pruner)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    count = optuna.trial.TrialState
    return TuneResult(best=read_best(folder), complete=states.count(count.COMPLETE), pruned=states.count(count.PRUNED),
                      failed=states.count(count.FAIL), folder=folder, storage=url, study_name=study_name)
