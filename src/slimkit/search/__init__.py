"""Student architecture search and hyperparameter tuning with Optuna, in one or many processes.

- ``search_students(teacher, data, NASConfig(...))``: multi-objective search over a
  :class:`SearchSpace` of the ``searchnet`` family (per-stage width, depth, kernel size,
  depthwise-separable or standard convs), scored by a short distillation and measured cost,
  under constraints; writes the Pareto front (table and plot); ``train_student`` trains the
  chosen one fully.
- ``tune(objective, params, out_dir)``: hyperparameter tuning with pruners, a time budget and the
  best result always saved (``DistillObjective``, ``PruneObjective``, ``QuantizeObjective``).
- ``run_workers``: K processes sharing one Optuna storage (SQLite file, journal file, any DB URL).
- Strategies (``NASConfig.strategy``): Optuna's ``nsga2`` (default), ``tpe``, ``random``; ``rl``
  (REINFORCE controller, ``RLConfig``) and ``darts`` (differentiable search, ``DartsConfig``,
  children are ``dartsnet`` models), see ``slimkit.search.strategies``.

Names load on first use, so ``import slimkit.search`` stays cheap (no optuna, no matplotlib).

>>> from slimkit.search import SearchSpace
>>> SearchSpace().knobs(SearchSpace().default_choices())["hidden"]
16
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FAMILY": "space", "SearchSpace": "space",
    "OBJECTIVES": "pareto", "dominates": "pareto", "front_markdown": "pareto", "pareto_front": "pareto",
    "plot_front": "pareto",
    "COSTS": "costs", "LatencyConfig": "costs", "constraint_bounds": "costs", "measure_cost": "costs",
    "measure_many": "costs", "violations": "costs",
    "NASConfig": "nas", "StudentObjective": "nas", "choose": "nas", "knobs_key": "nas", "proxy_loader": "nas",
    "trial_rows": "nas",
    "StudentSearch": "outcome", "search_students": "students", "train_student": "students",
    "BestKeeper": "tune", "ParamSpec": "tune", "TrialOutcome": "tune", "TrialReporter": "tune", "TuneResult": "tune",
    "read_best": "tune", "suggest_params": "tune", "tune": "tune",
    "DistillObjective": "objectives", "PruneObjective": "objectives", "QuantizeObjective": "objectives",
    "distill_config": "objectives",
    "DARTS_FAMILY": "darts_space", "DartsConfig": "darts", "RLConfig": "rl", "ReinforceSampler": "rl_sampler",
    "run_darts": "darts", "run_strategy": "strategies",
    "PrunerConfig": "workers", "SamplerConfig": "workers", "create_study": "workers", "open_storage": "workers",
    "run_workers": "workers", "split_trials": "workers", "storage_url": "workers",
}

__all__ = [
    "COSTS",
    "DARTS_FAMILY",
    "FAMILY",
    "OBJECTIVES",
    "BestKeeper",
    "DartsConfig",
    "DistillObjective",
    "LatencyConfig",
    "NASConfig",
    "ParamSpec",
    "PruneObjective",
    "PrunerConfig",
    "QuantizeObjective",
    "RLConfig",
    "ReinforceSampler",
    "SamplerConfig",
    "SearchSpace",
    "StudentObjective",
    "StudentSearch",
    "TrialOutcome",
    "TrialReporter",
    "TuneResult",
    "choose",
    "constraint_bounds",
    "create_study",
    "distill_config",
    "dominates",
    "front_markdown",
    "knobs_key",
    "measure_cost",
    "measure_many",
    "open_storage",
    "pareto_front",
    "plot_front",
    "proxy_loader",
    "read_best",
    "run_darts",
    "run_strategy",
    "run_workers",
    "search_students",
    "split_trials",
    "storage_url",
    "suggest_params",
    "train_student",
    "trial_rows",
    "tune",
    "violations",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slimkit.search' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"slimkit.search.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
