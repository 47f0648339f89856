"""Measured cost of candidate students (parameters, MACs, latency at batch 1 and 256) and the
constraints on it.

A constraint bound is absolute (``latency_b1_ms: 0.5``, ``params: 20000``) or relative to the
default student measured the same way in the same process (``"1.0x"``: no slower / no bigger
than the hand-designed student), which is what carries over on a shared, noisy machine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from slimkit.config import Config
from slimkit.errors import ConfigError

__all__ = ["COSTS", "LatencyConfig", "constraint_bounds", "measure_cost", "measure_many", "violations"]

#: Cost keys a constraint or objective may name.
COSTS = ("latency_b1_ms", "latency_b256_ms", "params", "macs")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")


class LatencyConfig(Config):
    """How candidates are timed (slimkit.evaluate.measure_latency: warm-up, fixed threads, median)."""

    warmup: int = Field(3, ge=0)
    repeats: int = Field(15, ge=1)
    threads: int = Field(1, ge=1)
    large_batch: int = Field(256, ge=2)


def _key(batch: int, large: int) -> str:
    return "latency_b1_ms" if batch == 1 else "latency_b256_ms" if batch == large else f"latency_b{batch}_ms"


def measure_many(models: Mapping[str, nn.Module], example_input: Tensor, config: LatencyConfig) -> dict[str, dict[str, float]]:
    """Cost of each model, the latencies measured alternating the models call by call.

    ``latency_b256_ms`` is the time for a batch of ``config.large_batch`` (256 by default).
    """
    from slimkit.evaluate import count_macs, count_params, measure_latency

    timed = measure_latency(dict(models), example_input[:1], batch_sizes=(1, config.large_batch), warmup=config.warmup,
                            repeats=config.repeats, threads=config.threads, memory=False)
    out: dict[str, dict[str, float]] = {}
    for name, model in models.items():
        with torch.no_grad():
            row: dict[str, float] = {"params": float(count_params(model)), "macs": float(count_macs(model, example_input[:1]))}
        for batch, stats in timed[name].items():
            row[_key(batch, config.large_batch)] = float(stats["median_ms"])
        out[name] = row
    return out


def measure_cost(model: nn.Module, example_input: Tensor, config: LatencyConfig | None = None) -> dict[str, float]:
    """Parameters, MACs (per sample) and median latency at batch 1 and 256 of one model.

    >>> from slimkit.models import searchnet
    >>> c = measure_cost(searchnet(input_size=8), torch.zeros(1, 1, 8, 8), LatencyConfig(warmup=0, repeats=1, large_batch=4))
    >>> c["params"], c["latency_b1_ms"] > 0
    (2482.0, True)
    """
    return measure_many({"model": model}, example_input, config or LatencyConfig())["model"]


def _parse(name: str, bound: float | str) -> tuple[str, float]:
    if isinstance(bound, (int, float)) and not isinstance(bound, bool):
        if bound <= 0:
            raise ConfigError(f"constraint '{name}' must be positive, got {bound}")
        return "absolute", float(bound)
    match = _RELATIVE.match(str(bound))
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"constraint '{name}': {bound!r} is neither a number nor a multiple like '1.0x'",
                          hint=f"e.g. {name}: 0.5 (absolute) or {name}: 1.0x (relative to the default student)")
    return "relative", float(match.group(1))


def check_constraints(constraints: Mapping[str, float | str]) -> dict[str, float | str]:
    """Validate constraint names and bounds; return them unchanged."""
    for name, bound in constraints.items():
        if name not in COSTS:
            raise ConfigError(f"unknown constraint '{name}'", hint=f"constrain one of {', '.join(COSTS)}")
        _parse(name, bound)
    return dict(constraints)


def constraint_bounds(constraints: Mapping[str, float | str], default_cost: Mapping[str, float] | None) -> dict[str, float]:
    """Absolute upper bounds: relative ones (``"1.1x"``) multiply the default student's cost.

    >>> constraint_bounds({"params": 20000, "latency_b1_ms": "1.5x"}, {"latency_b1_ms": 0.4})
    {'params': 20000.0, 'latency_b1_ms': 0.6000000000000001}
    """
    bounds = {}
    for name, bound in constraints.items():
        kind, value = _parse(name, bound)
        if kind == "relative":
            if default_cost is None:
                raise ConfigError(f"constraint {name}: {bound} is relative to the default student, which is not measured",
                                  hint="give an absolute bound")
            value *= default_cost[name]
        bounds[name] = value
    return bounds


def violations(cost: Mapping[str, float], bounds: Mapping[str, float]) -> list[float]:
    """Optuna's constraint values: ``cost - bound`` relative to the bound (``<= 0``: satisfied);
    ``[0.0]`` when there are no bounds.

    >>> violations({"params": 15000.0}, {"params": 10000.0})
    [0.5]
    """
    return [(cost[name] - bound) / bound for name, bound in bounds.items()] or [0.0]


class ConstraintsField(Config):
    """Mixin with the validated ``constraints`` field."""

    constraints: dict[str, float | str] = Field(default_factory=dict)

    @field_validator("constraints")
    @classmethod
    def _known(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_constraints(value)
        except ConfigError as exc:
            raise ValueError(str(exc).replace("\n  hint:", ";")) from None
