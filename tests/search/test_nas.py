"""Student search helpers: choosing from the front, the proxy subset, and config validation."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from slimkit.errors import ConfigError
from slimkit.search.nas import NASConfig, choose, knobs_key, proxy_loader


def test_choose_by_accuracy_or_knee():
    with pytest.raises(ConfigError, match="no feasible candidate"):
        choose([], {"accuracy": "maximize"})
    rows = [{"accuracy": 0.9, "ms": 4.0}, {"accuracy": 0.8, "ms": 1.0}, {"accuracy": 0.5, "ms": 0.9}]
    assert choose(rows, {"accuracy": "maximize", "ms": "minimize"})["ms"] == 4.0
    assert choose(rows, {"accuracy": "maximize", "ms": "minimize"}, "knee")["ms"] == 1.0


def test_config_and_helpers():
    with pytest.raises(ConfigError, match="objectives must be distinct names"):
        NASConfig(objectives=["accuracy", "speed"])
    assert NASConfig().directions() == {"accuracy": "maximize", "latency_b1_ms": "minimize"}
    assert knobs_key({"b": 1, "a": [2]}) == knobs_key({"a": [2], "b": 1})
    loader = DataLoader(TensorDataset(torch.arange(10.0), torch.arange(10)), batch_size=4)
    subset = proxy_loader(loader, 6)
    assert len(subset.dataset) == 6 and proxy_loader(loader, None) is loader
    assert sorted(subset.dataset.indices) == sorted(proxy_loader(loader, 6).dataset.indices)  # seeded: the same subset
