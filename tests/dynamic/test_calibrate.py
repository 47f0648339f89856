import math

import numpy as np
import pytest

from slimkit.dynamic import ExitTable, calibrate, simulate
from slimkit.errors import ConfigError


def table(n: int = 400, seed: int = 0) -> ExitTable:
    """Two exits whose confidence predicts correctness (as trained exits do), a better final head."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.3, 1.0, size=(n, 2))
    correct = np.stack([rng.uniform(size=n) < scores[:, 0] ** 2, rng.uniform(size=n) < scores[:, 1],
                        rng.uniform(size=n) < 0.95], axis=1)
    return ExitTable(scores, correct, segment_macs=[100, 300, 600], head_macs=[10, 20])


def test_simulate_takes_the_first_exit_at_or_above_its_threshold():
    t = ExitTable(np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.1]]), np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]], bool),
                  [100, 300, 600], [10, 20])
    got = simulate(t, [0.5, 0.5])
    assert got["exits"].tolist() == [0, 1, 2] and got["accuracy"] == pytest.approx(1.0)
    assert got["mean_macs"] == pytest.approx((110 + 430 + 1030) / 3) and got["rates"] == pytest.approx([1 / 3] * 3)
    off = simulate(t, [math.inf, 0.5])  # a disabled exit's head is never run
    assert off["exits"].tolist() == [2, 1, 2] and off["mean_macs"] == pytest.approx((1020 + 420 + 1020) / 3)


@pytest.mark.parametrize("drop", [0.0, 1.0, 5.0])
def test_accuracy_budget_is_met_with_fewer_macs(drop):
    t = table()
    result = calibrate(t, "accuracy_drop", drop)
    assert result["met"] and result["drop_points"] <= drop + 1e-9
    assert result["mean_macs"] <= t.static_macs + 30  # never worse than running everything with heads on
    if drop >= 1.0:
        assert result["macs_share"] < 0.9  # a real saving once some accuracy may go


def test_a_looser_budget_never_costs_more():
    t = table()
    costs = [calibrate(t, "accuracy_drop", d)["mean_macs"] for d in (0.0, 0.5, 2.0, 8.0)]
    assert costs == sorted(costs, reverse=True)


def test_macs_budget_is_met_with_the_best_accuracy_found():
    t = table()
    result = calibrate(t, "target_macs", 0.5)
    assert result["met"] and result["macs_share"] <= 0.5
    tight = calibrate(t, "target_macs", 0.3)
    assert tight["accuracy"] <= result["accuracy"] + 1e-9


def test_unknown_budget_is_refused():
    with pytest.raises(ConfigError, match="unknown budget"):
        calibrate(table(), "latency", 1.0)


def test_latency_cost_drops_an_exit_whose_head_costs_more_time_than_it_saves():
    t = table()
    # exit 0's head is almost free in MACs but slow in time (fixed overheads), and saves little time
    t.segment_ms, t.head_ms = [0.30, 0.05, 0.05], [0.20, 0.01]
    by_macs = calibrate(t, "accuracy_drop", 3.0, cost="macs")
    by_time = calibrate(t, "accuracy_drop", 3.0, cost="latency")
    assert by_macs["thresholds"][0] <= 1.0 and by_time["thresholds"][0] == math.inf
    assert by_time["expected_ms"] <= simulate(t, by_macs["thresholds"])["mean_ms"]
    assert by_time["static_ms"] == pytest.approx(0.40)


def test_a_margin_keeps_a_safety_distance_from_the_budget():
    t = table()
    plain, safe = calibrate(t, "accuracy_drop", 2.0), calibrate(t, "accuracy_drop", 2.0, margin=1.0)
    assert safe["drop_points"] + safe["drop_se_points"] <= 2.0 + 1e-9
    assert safe["drop_points"] <= plain["drop_points"] and safe["mean_macs"] >= plain["mean_macs"]
