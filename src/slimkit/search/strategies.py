"""Search strategies beyond Optuna's samplers, behind the same ``search_students`` call:

- ``rl``: the REINFORCE controller (:mod:`slimkit.search.rl`) proposes the trials of an
  ordinary student-search study (same objective, storage, resumption, front and summary);
- ``darts``: a DARTS search (:mod:`slimkit.search.darts`) of its own cell space, whose child is
  then scored like any trial (measured cost, constraints, the same proxy distillation) and
  becomes the chosen student (a ``dartsnet``).

Both run in one process (``workers: 1``) and resume when rerun on the same folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.fileio import atomic_write_json, atomic_write_text
from slimkit.search.nas import DEFAULT, NASConfig, StudentObjective, choose, front_of
from slimkit.search.rl import RLConfig, mnas_reward

if TYPE_CHECKING:
    import optuna

    from slimkit.data import Loaders
    from slimkit.search.outcome import StudentSearch

__all__ = ["STRATEGIES", "latency_target", "reward_latency", "rl_reward", "run_strategy", "search_darts", "search_rl"]

#: Strategies this module runs (the others are Optuna samplers: nsga2, tpe, random).
STRATEGIES = ("darts", "rl")


def run_strategy(model: nn.Module, loaders: Loaders, config: NASConfig, out: Path, *, n_trials: int | None,
                 timeout: float | None, workers: int, storage: str | None, study_name: str,
                 threads: int | None) -> StudentSearch:
    """Run ``config.strategy`` (darts or rl); see the module docstring."""
    if workers != 1:
        raise ConfigError(f"search strategy '{config.strategy}' runs in one process, got workers={workers}",
                          hint="set workers: 1, or use strategy nsga2/tpe/random to spread trials over workers")
    from slimkit.train.runtime import num_threads

    with num_threads(threads):
        if config.strategy == "rl":
            return search_rl(model, loaders, config, out, n_trials=n_trials, timeout=timeout, storage=storage,
                             study_name=study_name)
        if config.strategy == "darts":
            return search_darts(model, loaders, config, out, timeout=timeout)
    raise ConfigError(f"unknown search strategy {config.strategy!r}", hint=f"strategies here: {', '.join(STRATEGIES)}")


# ---------------------------------------------------------------------- RL
def reward_latency(config: NASConfig) -> str:
    """The latency in the reward: batch 256 when the search optimises it, else batch 1."""
    return "latency_b256_ms" if "latency_b256_ms" in config.objectives else "latency_b1_ms"


def latency_target(study: optuna.Study, config: NASConfig, objective: StudentObjective) -> float | None:
    """The reward's latency target: the config's, or that latency's constraint bound; stored in
    the study the first time, so a resumed search replays the same rewards."""
    key = "rl_latency_target_ms"
    if key in study.user_attrs:
        return study.user_attrs[key]
    target = config.rl.latency_target_ms
    if target is None and reward_latency(config) in config.constraints:
        target = objective.bounds()[reward_latency(config)]
    study.set_user_attr(key, target)
    return target


def rl_reward(trial: optuna.trial.FrozenTrial, target: float | None, config: RLConfig,
              latency: str = "latency_b1_ms") -> float | None:
    """A finished trial's reward (0 when it broke a constraint and was not trained)."""
    attrs = trial.user_attrs
    if "accuracy" not in attrs:
        return None
    if not attrs.get("trained", False):
        return 0.0
    return mnas_reward(float(attrs["accuracy"]), attrs.get("cost", {}).get(latency), target, config.reward_alpha,
                       config.reward_beta)


def search_rl(model: nn.Module, loaders: Loaders, config: NASConfig, out: Path, *, n_trials: int | None,
              timeout: float | None, storage: str | None, study_name: str) -> StudentSearch:
    """Student search with the REINFORCE controller proposing every trial."""
    import optuna

    from slimkit.search.outcome import FrontWriter, make_objective, summarize
    from slimkit.search.rl_sampler import ReinforceSampler
    from slimkit.search.workers import create_study, finished_trials, open_storage, storage_url

    if n_trials is None and timeout is None:
        raise ConfigError("a search needs n_trials or a timeout (or both)", hint="pass --trials N or --timeout S")
    objective = make_objective(model, loaders, config, out)
    url = storage_url(storage, out)
    study = create_study(url, study_name, list(config.directions().values()), sampler=config.sampler)
    if config.include_default:
        study.enqueue_trial(config.space.default_choices(), skip_if_exists=True)
    target = latency_target(study, config, objective)
    latency = reward_latency(config)
    sampler = ReinforceSampler(config.space.choices(), config.rl, lambda t: rl_reward(t, target, config.rl, latency),
                               seed=config.seed)
    study = optuna.load_study(study_name=study_name, storage=open_storage(url), sampler=sampler)
    remaining = None if n_trials is None else max(0, n_trials - len(finished_trials(study)))
    if remaining != 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[FrontWriter(out, config)])
    sampler.sync(study)
    atomic_write_json(out / "controller.json", {"episodes": sampler.applied, "rewards": sampler.rewards,
                                                "baseline": sampler.baseline, "latency_target_ms": target,
                                                "latency": latency,
                                                "policy": sampler.probabilities()})
    return summarize(study, objective, config, out, url)


# ---------------------------------------------------------------------- DARTS
def search_darts(model: nn.Module, loaders: Loaders, config: NASConfig, out: Path, *,
                 timeout: float | None) -> StudentSearch:
    """A DARTS search, then its child scored like a trial (see the module docstring)."""
    from slimkit.models import build_model
    from slimkit.search.costs import constraint_bounds, measure_many, violations
    from slimkit.search.darts import run_darts
    from slimkit.search.darts_space import DARTS_FAMILY
    from slimkit.search.outcome import StudentSearch, make_objective
    from slimkit.search.pareto import OBJECTIVES, plot_front

    objective = make_objective(model, loaders, config, out)
    shape = objective.shape
    started = time.perf_counter()
    result = run_darts(config.darts, objective.train_loader, out / "darts", in_channels=shape["in_channels"],
                       num_classes=shape["num_classes"], input_size=shape["input_size"], seed=config.seed,
                       timeout=timeout, latency=config.latency)
    knobs = config.darts.knobs(result.genotype)
    row = _cached_child(out, knobs)
    if row is None:
        torch.manual_seed(config.seed)
        child = build_model(DARTS_FAMILY, **shape, **knobs)
        costs = measure_many({"child": child, DEFAULT: objective.build(config.space.default_choices())},
                             objective.example, config.latency)
        bounds = constraint_bounds(config.constraints, costs[DEFAULT])
        limits = violations(costs["child"], bounds)
        feasible = all(v <= 0 for v in limits)
        accuracy = objective._proxy_accuracy(child) if feasible else 0.0
        # the columns of a searchnet row too (tables print them): a cell count is a stage's depth
        shown = {"depths": knobs["cells"], "kernels": "cell", "separable": "cell"}
        row = {"trial": 0, "family": DARTS_FAMILY, "knobs": knobs, **knobs, **shown, "accuracy": accuracy, **costs["child"],
               "violations": limits, "feasible": feasible, "trained": feasible,
               "bounds": {**bounds, **{f"default_{k}": v for k, v in costs[DEFAULT].items()}},
               "search_seconds": result.seconds, "epochs": result.epochs, "stopped": result.stopped}
        atomic_write_json(out / "child.json", row)
    bounds = dict(row["bounds"])
    directions = config.directions()
    front = front_of([row], directions)
    if not front:
        raise ConfigError(f"the DARTS child breaks the constraints {config.constraints} (violations {row['violations']})",
                          hint="set darts.latency: true, narrow darts.widths or darts.ops, or loosen the constraints")
    chosen = choose(front, directions, config.choose)
    atomic_write_json(out / "front.json", {"final": True, "front": front, "rows": [row], "chosen": chosen,
                                           "bounds": bounds, "objectives": directions, "strategy": "darts",
                                           "seconds": time.perf_counter() - started})
    costs = [n for n in config.objectives if n != "accuracy"]
    x = costs[0] if costs else "latency_b1_ms"
    plot_front([row], out / "front.png", x=x, y="accuracy", directions={x: OBJECTIVES[x], "accuracy": "maximize"},
               highlight={"chosen": chosen}, title=f"DARTS child ({result.epochs} search epochs)")
    search = StudentSearch([row], front, chosen, bounds, out, str(out / "darts"), "darts", result.epochs)
    atomic_write_text(out / "front.md", search.table() + "\n")
    return search


def _cached_child(out: Path, knobs: dict[str, Any]) -> dict[str, Any] | None:
    path = out / "child.json"
    if not path.is_file():
        return None
    row = json.loads(path.read_text(encoding="utf-8"))
    return row if row.get("knobs") == json.loads(json.dumps(knobs)) else None
