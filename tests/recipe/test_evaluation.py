"""Measurement helpers: the summary sentence, targets, ratios, layer tables."""

import math

from torch import nn

from slimkit.recipe import Targets
from slimkit.recipe.evaluation import (
    check_targets,
    layer_table,
    merge_layers,
    summary_text,
    versus,
)


def test_summary_reads_like_a_sentence():
    ratios = {"size_ratio": 10.4, "speedup": {"1": 4.26, "256": 0.5}, "accuracy_delta": -0.23}
    assert summary_text(ratios) == "10.4x smaller, 2.0x slower at batch 256, 4.3x faster at batch 1, -0.2 points accuracy"
    assert summary_text({"size_ratio": 0.5, "speedup": {}}) == "2.0x larger"


def test_targets_are_checked_against_the_ratios():
    targets = Targets(size_ratio=10, speedup={1: 4, 256: 8}, accuracy_drop=1.0)
    rows = check_targets(targets, {"size_ratio": 12.0, "speedup": {"1": 3.9, "256": 9.0}, "accuracy_delta": -1.2})
    assert [(r["target"], r["met"]) for r in rows] == [
        (">= 10x smaller", True), (">= 4x faster at batch 1", False), (">= 8x faster at batch 256", True),
        ("<= 1 points accuracy lost", False)]


def test_versus_gives_deltas_only_on_the_same_data():
    original = {"quality": {"accuracy": 0.9, "f1": 0.9, "roc_auc": 0.99, "ece": 0.02},
                "cost": {"bytes": 1000, "params": 100, "macs": 50}, "latency": {"1": {"median_ms": 2.0}}}
    current = {"quality": {"accuracy": 0.88, "f1": 0.87, "roc_auc": 0.98, "ece": 0.03},
               "cost": {"bytes": 100, "params": 10, "macs": 25}, "latency": {"1": {"median_ms": 0.5}}}
    vs = versus(current, original, same_data=True)
    assert math.isclose(vs["accuracy_delta"], -2.0) and vs["size_ratio"] == 10 and vs["speedup"] == {"1": 4.0}
    assert "accuracy_delta" not in versus(current, original, same_data=False)
    assert versus(current, None, same_data=True) == {}


def test_layer_table_counts_each_layer_and_merges_extras():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.ReLU(), nn.Linear(4, 2))
    net[2].weight.data[0].zero_()
    table = layer_table(net)
    assert table["0"]["params"] == 36 and table["0"]["out"] == 4 and table["2"]["nonzero"] == 4
    assert table["2"]["sparsity"] == 0.5 and table["2"]["bits"] == 32
    merged = merge_layers({}, table, {"2": {"bits": 8}})
    assert merged["2"]["bits"] == 8 and merged["0"]["bits"] == 32 and table["2"]["bits"] == 32




def test_a_loss_exactly_at_the_accuracy_target_meets_it():
    from slimkit.recipe.evaluation import check_targets, versus
    from slimkit.recipe.fields import Targets

    cost = {"bytes": 1, "params": 1, "macs": 1}
    ratios = versus({"quality": {"accuracy": 0.9226}, "cost": cost}, {"quality": {"accuracy": 0.9276}, "cost": cost},
                    same_data=True)
    assert ratios["accuracy_delta"] == -0.5  # 100 * (0.9226 - 0.9276) is -0.5000000000000004 in floats
    assert check_targets(Targets(accuracy_drop=0.5), ratios)[0]["met"]
