"""The dynamic-inference benchmark's --quick run works and its JSON holds every figure the table
shows, with the targets in the shared schema."""

import pytest


def test_quick_dynamic_benchmark_figures_and_targets(quick_bench):
    data, markdown = quick_bench("dynamic", timeout=600)
    assert data["benchmark"] == "dynamic" and data["quick"] is True
    ee = data["early_exit"]
    assert {"commit", "machine"} <= set(ee) and len(ee["seeds"]) == 1
    seed = ee["seeds"][0]
    assert set(seed["head_accuracy"]) == {"features.0", "features.1", "final"}
    for budget in ("0.2", "0.5", "1.0"):
        row = seed["budgets"][budget]
        assert sum(row["exit_rates"]) == pytest.approx(1.0) and 0 < row["macs_share"] <= 1.2
        b1 = row["latency"]["batch1"]
        assert b1["static"]["mean_ms"] > 0 and b1["dynamic"]["p90_ms"] > 0 and b1["static"]["samples"] == 60
        assert b1["speedup_mean"] == pytest.approx(b1["static"]["mean_ms"] / b1["dynamic"]["mean_ms"])
        assert ee["summary"][budget]["speedup_b1"] == [b1["speedup_mean"]]
    onnx = ee["onnx"]
    assert 0 <= onnx["test_accuracy"] <= 1 and "exits.json" in onnx["files"] and onnx["batch1"]["dynamic"]["mean_ms"] > 0
    assert "QUICK" in markdown and "Early exit" in markdown and "Channel gating" in markdown

    row = data["gating"]["densities"]["0.5"]
    assert 0 < row["macs_share"] < 1 and len(row["test_accuracy"]) == 1 and row["speedup_b1"][0] > 0
    targets = data["targets"]
    assert len(targets) == 2 and all(set(t) == {"target", "value", "met"} for t in targets)
    speed = data["early_exit"]["summary"]["0.5"]["speedup_b1"][0]
    assert targets[0]["value"] == pytest.approx(speed)
    assert targets[0]["met"] == (speed >= 1.5 and max(data["early_exit"]["summary"]["0.5"]["test_drop_points"]) <= 0.5)
