import json
import re

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from slimkit.evaluate import CompareConfig, Comparison, artifact_bytes, compare, count_params

SMALL = CompareConfig(batch_sizes=(1, 8), warmup=1, repeats=3, threads=1)


def _loader():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 4
    x = torch.randn(64, 1, 6, 6, generator=g) + y.view(-1, 1, 1, 1).float()
    return DataLoader(TensorDataset(x, y), batch_size=16)


def _net(width: int) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, 4),
    )


def test_model_against_itself_gives_unit_ratios():
    model = _net(8)
    c = compare(model, model, _loader(), SMALL)
    assert isinstance(c, Comparison) and c.names == ("original", "compressed")
    assert c.ratios["params_ratio"] == 1.0 and c.ratios["size_ratio"] == 1.0
    assert c.ratios["macs_ratio"] == 1.0 and c.ratios["accuracy_delta"] == 0.0
    assert c.agreement["agreement"] == 1.0 and c.agreement["right_to_wrong"] == 0
    assert set(c.ratios["speedup"]) == {1, 8} and all(v > 0 for v in c.ratios["speedup"].values())
    assert c.quality["original"] == c.quality["compressed"]
    assert c.robustness["original"]["clean"] == c.quality["original"]["accuracy"]
    assert c.settings["threads"] == 1 and c.settings["num_samples"] == 64


def test_two_models_ratios_table_summary_and_json():
    big, small = _net(16), _net(4)
    c = compare(big, small, _loader(), SMALL, names=("teacher", "student"))
    assert c.ratios["params_ratio"] == pytest.approx(count_params(big) / count_params(small))
    assert c.ratios["size_ratio"] == pytest.approx(artifact_bytes(big) / artifact_bytes(small))
    assert c.cost["teacher"]["macs"] == 16 * 36 * 9 + 16 * 4
    assert c.ratios["macs_ratio"] == pytest.approx((16 * 36 * 9 + 64) / (4 * 36 * 9 + 16))
    acc = c.quality["student"]["accuracy"] - c.quality["teacher"]["accuracy"]
    assert c.ratios["accuracy_delta"] == pytest.approx(100 * acc)
    lat_t, lat_s = (c.cost[n]["latency"][1]["median_ms"] for n in ("teacher", "student"))
    assert c.ratios["speedup"][1] == pytest.approx(lat_t / lat_s)

    console = Console(record=True, width=140)
    console.print(c.table())
    text = console.export_text()
    rows = ("accuracy", "macro-F1", "ROC-AUC", "ECE", "params", "bytes", "MACs")
    for row in (*rows, "latency b1", "latency b8"):
        assert row in text
    assert "teacher" in text and "student" in text

    pattern = r"[\d.]+x (smaller|larger), [\d.]+x (faster|slower) \(batch 1\), "
    assert re.fullmatch(pattern + r"[+-]\d+\.\d points accuracy", c.summary()), c.summary()
    data = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert data["names"] == ["teacher", "student"] and "1" in data["ratios"]["speedup"]


def test_compare_can_skip_robustness_and_rejects_equal_names():
    model = _net(4)
    c = compare(model, model, _loader(), SMALL.replace(noise=(), shift=()))
    assert c.robustness == {}
    with pytest.raises(ValueError, match="two different"):
        compare(model, model, _loader(), names=("x", "x"))
