"""Measured cost of candidates and constraint bounds (absolute or relative to the default student)."""

import pytest
import torch

from slimkit.errors import ConfigError
from slimkit.models import searchnet
from slimkit.search.costs import (
    LatencyConfig,
    constraint_bounds,
    measure_many,
    violations,
)
from slimkit.search.nas import NASConfig

QUICK = LatencyConfig(warmup=0, repeats=2, large_batch=8)


def test_measure_many_reports_every_cost():
    small, big = searchnet(input_size=8, widths=[2, 4], hidden=0), searchnet(input_size=8, widths=[16, 32], hidden=64)
    costs = measure_many({"small": small, "big": big}, torch.zeros(1, 1, 8, 8), QUICK)
    assert set(costs["small"]) == {"params", "macs", "latency_b1_ms", "latency_b256_ms"}
    assert costs["small"]["params"] == sum(p.numel() for p in small.parameters())
    assert costs["small"]["macs"] < costs["big"]["macs"] and costs["small"]["params"] < costs["big"]["params"]
    assert all(v > 0 for c in costs.values() for v in c.values())


def test_bounds_and_violations():
    bounds = constraint_bounds({"params": 1000, "latency_b1_ms": "2x"}, {"latency_b1_ms": 0.5})
    assert bounds == {"params": 1000.0, "latency_b1_ms": 1.0}
    assert violations({"params": 500.0, "latency_b1_ms": 1.5}, bounds) == [-0.5, 0.5]
    assert violations({"params": 1.0}, {}) == [0.0]
    with pytest.raises(ConfigError, match="not measured"):
        constraint_bounds({"params": "1x"}, None)


@pytest.mark.parametrize("constraints, message", [
    ({"latency": 1.0}, "unknown constraint 'latency'"),
    ({"params": "fast"}, "neither a number nor a multiple"),
    ({"params": -1}, "must be positive"),
])
def test_bad_constraints_fail_when_the_config_is_built(constraints, message):
    with pytest.raises(ConfigError, match=message):
        NASConfig(constraints=constraints)
