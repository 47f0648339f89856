"""Student architecture search: multi-objective Optuna search over a :class:`SearchSpace`.

Each trial builds a candidate, measures its cost (parameters, MACs, latency at batch 1 and 256),
and, when it meets the constraints, distills it briefly from the teacher (``proxy``, optionally
on a subset) for a proxy accuracy. A candidate that breaks a constraint is not trained (its
accuracy counts as 0; the constrained sampler ranks it by how far it is off). A candidate
already scored in the study (by any worker) is not trained again: its result is copied.

When the trials are done every scored candidate is timed again in one process, alternating
the models (fair latency, see slimkit.evaluate.measure_latency), the constraints are re-checked
on those figures, and the Pareto front of the feasible ones is written as ``front.json``,
``front.md`` and ``front.png``. ``front.json`` is also rewritten after every trial, so an
interrupted search leaves its front so far.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from slimkit.config import Seed
from slimkit.distillation import DistillConfig
from slimkit.errors import ConfigError
from slimkit.search.costs import (
    ConstraintsField,
    LatencyConfig,
    constraint_bounds,
    measure_many,
    violations,
)
from slimkit.search.darts import DartsConfig
from slimkit.search.pareto import OBJECTIVES, pareto_front
from slimkit.search.rl import RLConfig
from slimkit.search.space import SearchSpace
from slimkit.search.workers import SamplerConfig
from slimkit.train import TrainConfig

if TYPE_CHECKING:
    import optuna
    from torch.utils.data import DataLoader

__all__ = ["NASConfig", "StudentObjective", "choose", "knobs_key", "proxy_loader", "trial_rows"]

DEFAULT = "default"
#: Optuna samplers: a strategy of that name is ``sampler.name``.
SAMPLERS = ("nsga2", "tpe", "random")


def _proxy_default() -> DistillConfig:
    return DistillConfig(train=TrainConfig(epochs=1, progress=False))


class NASConfig(ConstraintsField):
    """What student search optimizes and how it scores candidates.

    - ``objectives``: row keys from ``slimkit.search.pareto.OBJECTIVES`` (accuracy is maximized,
      costs minimized);
    - ``constraints``: upper bounds on ``latency_b1_ms``, ``latency_b256_ms``, ``params`` or
      ``macs``, absolute or relative to the default student (``"1.0x"``);
    - ``proxy``: the short distillation that scores a candidate, on ``proxy_limit`` training
      samples (all when None); ``final``: the full distillation of the chosen student;
    - ``include_default``: try the default student first, so the front shows where it stands;
    - ``choose``: ``accuracy`` picks the most accurate feasible front point (ties: the cheapest
      in the last objective); ``knee`` the front point nearest the ideal corner;
    - ``strategy``: how candidates are proposed: ``nsga2`` (the default), ``tpe`` or ``random``
      (Optuna's samplers: the same as ``sampler.name``), ``rl`` (a REINFORCE controller over this
      space, settings in ``rl``) or ``darts`` (differentiable search of a cell space, settings
      in ``darts``; its child is a ``dartsnet``); see ``slimkit.search.strategies``.
    """

    space: SearchSpace = Field(default_factory=SearchSpace)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "latency_b1_ms"])
    proxy: DistillConfig = Field(default_factory=_proxy_default)
    proxy_limit: int | None = Field(None, ge=1)
    final: DistillConfig = Field(default_factory=DistillConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(name="nsga2"))
    include_default: bool = True
    remeasure: bool = True
    choose: Literal["accuracy", "knee"] = "accuracy"
    seed: Seed = 0
    strategy: Literal["nsga2", "tpe", "random", "rl", "darts"] | None = None
    rl: RLConfig = Field(default_factory=RLConfig)
    darts: DartsConfig = Field(default_factory=DartsConfig)

    @model_validator(mode="before")
    @classmethod
    def _strategy_is_sampler(cls, data: Any) -> Any:
        """A sampler strategy names ``sampler.name`` (set it, or check that both agree)."""
        if not isinstance(data, dict) or data.get("strategy") not in SAMPLERS:
            return data
        strategy, sampler = data["strategy"], data.get("sampler")
        given = sampler.name if isinstance(sampler, SamplerConfig) else (sampler or {}).get("name")
        if given is not None and given != strategy:
            raise ValueError(f"strategy '{strategy}' and sampler.name '{given}' disagree; give one of them")
        if given is None:
            rest = sampler.to_dict() if isinstance(sampler, SamplerConfig) else dict(sampler or {})
            data = {**data, "sampler": {**rest, "name": strategy}}
        return data

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in OBJECTIVES]
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(f"objectives must be distinct names from {list(OBJECTIVES)}, got {names}")
        return names

    def directions(self) -> dict[str, str]:
        """Each objective with ``maximize`` or ``minimize``."""
        return {name: OBJECTIVES[name] for name in self.objectives}


def knobs_key(knobs: Mapping[str, Any]) -> str:
    """One string per architecture: candidates whose unused deeper-stage choices differ share it."""
    return json.dumps(dict(knobs), sort_keys=True)


def proxy_loader(loader: DataLoader, limit: int | None, *, seed: int = 0) -> DataLoader:
    """``loader`` over a fixed random subset of ``limit`` samples (the loader itself when None)."""
    from torch.utils.data import DataLoader, Subset

    size = len(loader.dataset)  # type: ignore[arg-type]
    if limit is None or limit >= size:
        return loader
    keep = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return DataLoader(Subset(loader.dataset, keep.tolist()), batch_size=loader.batch_size, shuffle=True,
                      collate_fn=loader.collate_fn, num_workers=loader.num_workers)


class StudentObjective:
    """The Optuna objective of student search (see the module docstring)."""

    def __init__(self, teacher: nn.Module, train_loader: DataLoader, val_loader: Any, config: NASConfig,
                 *, input_shape: tuple[int, int, int], num_classes: int, cache_dir: str | Path | None = None) -> None:
        self.teacher, self.config = teacher.eval().requires_grad_(False), config
        self.train_loader = proxy_loader(train_loader, config.proxy_limit, seed=config.seed)
        self.val_loader = val_loader
        self.shape = {"in_channels": input_shape[0], "input_size": input_shape[-1], "num_classes": num_classes}
        self.example = torch.zeros(1, *input_shape)
        proxy = config.proxy
        if cache_dir is not None and proxy.cache_dir is None and proxy.cache_teacher in ("auto", "disk"):
            proxy = proxy.replace(cache_dir=str(cache_dir))  # teacher outputs once, shared by trials and workers
        self.proxy = proxy.replace(train=proxy.train.replace(seed=config.seed, progress=False))
        self._bounds: dict[str, float] | None = None
        self._default_cost: dict[str, float] | None = None
        self._default_key = knobs_key(config.space.knobs(config.space.default_choices()))

    def build(self, choices: Mapping[str, Any]) -> nn.Module:
        """The candidate's model, initialised from the search seed (same choices, same weights)."""
        torch.manual_seed(self.config.seed)
        return self.config.space.build(dict(choices), **self.shape)

    def bounds(self) -> dict[str, float]:
        """The constraint bounds; a relative bound times the default student timed here now."""
        if self._bounds is None:
            relative = any(isinstance(b, str) for b in self.config.constraints.values())
            if relative:
                self._default_cost = measure_many({DEFAULT: self.build(self.config.space.default_choices())},
                                                  self.example, self.config.latency)[DEFAULT]
            self._bounds = constraint_bounds(self.config.constraints, self._default_cost)
        return self._bounds

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        choices = self.config.space.suggest(trial)
        knobs = self.config.space.knobs(choices)
        trial.set_user_attr("knobs", knobs)
        done = _scored(trial.study, knobs_key(knobs), trial.number)
        if done is not None:  # another trial (maybe another worker's) scored this architecture
            for key in ("cost", "constraints", "accuracy", "trained"):
                trial.set_user_attr(key, done.user_attrs[key])
            for name, value in done.constraints.items():
                trial.set_constraint(name, value)
            trial.set_user_attr("duplicate_of", done.number)
            return self._values(done.user_attrs)
        model = self.build(choices)
        bounds = self.bounds()
        if self._default_cost is not None and knobs_key(knobs) == self._default_key:
            cost = dict(self._default_cost)  # the reference itself: exactly at "1.0x", whatever the noise
        else:
            cost = measure_many({"candidate": model}, self.example, self.config.latency)["candidate"]
        limits = violations(cost, bounds)
        trial.set_user_attr("cost", cost)
        trial.set_user_attr("constraints", limits)
        for name, value in zip(bounds, limits):  # what NSGA-II and TPE rank infeasible trials by
            trial.set_constraint(name, value)
        trained = all(v <= 0 for v in limits)
        accuracy = self._proxy_accuracy(model) if trained else 0.0
        trial.set_user_attr("accuracy", accuracy)
        trial.set_user_attr("trained", trained)
        return self._values(trial.user_attrs)

    def _proxy_accuracy(self, model: nn.Module) -> float:
        from slimkit.distillation import run_distillation

        result = run_distillation(model, self.teacher, self.train_loader, self.proxy, val_loader=self.val_loader)
        return float(result.history[-1]["val_acc"])

    def _values(self, attrs: Mapping[str, Any]) -> tuple[float, ...]:
        row = {"accuracy": attrs["accuracy"], **attrs["cost"]}
        return tuple(float(row[name]) for name in self.config.objectives)


def _scored(study: optuna.Study, key: str, number: int) -> optuna.trial.FrozenTrial | None:
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.number != number and "knobs" in trial.user_attrs and knobs_key(trial.user_attrs["knobs"]) == key:
            return trial
    return None


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per complete, non-duplicate trial: trial, knobs, accuracy, costs, feasible, trained."""
    import optuna

    rows = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        if "duplicate_of" in attrs or "cost" not in attrs:
            continue
        rows.append({"trial": trial.number, "knobs": dict(attrs["knobs"]), **attrs["knobs"], "accuracy": attrs["accuracy"], **attrs["cost"],
                     "violations": list(attrs["constraints"]), "feasible": all(v <= 0 for v in attrs["constraints"]),
                     "trained": bool(attrs["trained"])})
    return rows


def remeasure(rows: list[dict[str, Any]], objective: StudentObjective) -> dict[str, float]:
    """Time every row's architecture again, alternating all of them (and the default student) in
    this process; update costs, violations and feasibility in place; return the bounds used and
    the default student's cost (``default_*``)."""
    from slimkit.models import build_model
    from slimkit.search.space import FAMILY

    models = {str(r["trial"]): build_model(FAMILY, **objective.shape, **r["knobs"]) for r in rows}
    default_key = knobs_key(objective.config.space.knobs(objective.config.space.default_choices()))
    reference = next((str(r["trial"]) for r in rows if knobs_key(r["knobs"]) == default_key), DEFAULT)
    if reference == DEFAULT:  # the default student was not scored: time it alongside
        models[DEFAULT] = objective.build(objective.config.space.default_choices())
    costs = measure_many(models, objective.example, objective.config.latency)
    costs[DEFAULT] = costs[reference]  # one measurement: the default row is exactly at "1.0x"
    objective._bounds = constraint_bounds(objective.config.constraints, costs[DEFAULT])
    for row in rows:
        row.update(costs[str(row["trial"])])
        row["violations"] = violations(costs[str(row["trial"])], objective._bounds)
        row["feasible"] = all(v <= 0 for v in row["violations"])
    return {**objective._bounds, **{f"default_{k}": v for k, v in costs[DEFAULT].items()}}


def choose(front: list[dict[str, Any]], directions: Mapping[str, str], how: str = "accuracy") -> dict[str, Any]:
    """The front row to train fully (see ``NASConfig.choose``).

    >>> rows = [{"accuracy": 0.9, "ms": 2.0}, {"accuracy": 0.9, "ms": 1.0}, {"accuracy": 0.7, "ms": 0.5}]
    >>> choose(rows, {"accuracy": "maximize", "ms": "minimize"})["ms"]
    1.0
    """
    if not front:
        raise ConfigError("no feasible candidate was found, so there is nothing to choose",
                          hint="loosen the constraints, widen the search space or run more trials")
    names = list(directions)
    sign = {n: 1.0 if directions[n] == "maximize" else -1.0 for n in names}
    if how == "accuracy" and "accuracy" in directions:
        last = names[-1] if names[-1] != "accuracy" else names[0]
        return max(front, key=lambda r: (r["accuracy"], sign[last] * r[last]))
    lows = {n: min(r[n] for r in front) for n in names}
    spans = {n: (max(r[n] for r in front) - lows[n]) or 1.0 for n in names}

    def distance(row: Mapping[str, Any]) -> float:  # 0 at the ideal corner of the normalised front
        norm = {n: (row[n] - lows[n]) / spans[n] for n in names}
        return sum((1.0 - norm[n] if sign[n] > 0 else norm[n]) ** 2 for n in names)

    return min(front, key=distance)


def front_of(rows: list[dict[str, Any]], directions: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Pareto front of the trained, feasible rows, sorted by the last objective."""
    ok = [r for r in rows if r["feasible"] and r["trained"]]
    front = [ok[i] for i in pareto_front(ok, directions)]
    return sorted(front, key=lambda r: r[list(directions)[-1]])


