import pytest
import torch

from slimkit.dynamic import EarlyExit, collect, exit_report, make_dynamic, per_sample_latency, samples_of, simulate
from slimkit.train import TrainConfig


def test_report_matches_the_calibration_table_and_times_both_models(trained, loaders):
    net = make_dynamic(trained, EarlyExit(exits=["features.0", "features.1"], train=TrainConfig(epochs=1, progress=False),
                                          accuracy_drop=3.0), loaders[0], val_loader=loaders[1])
    report = exit_report(net, loaders[2], latency_samples=12, latency_batch=8, latency_batches=2, warmup=2)
    rows = report["exits"]
    assert [r["exit"] for r in rows] == ["features.0", "features.1", "final"]
    assert sum(r["rate"] for r in rows) == pytest.approx(1.0) and sum(r["count"] for r in rows) == report["samples"]
    expected = simulate(collect(net, loaders[2]), net.thresholds.tolist())  # what the table predicts, run for real
    assert [r["rate"] for r in rows] == pytest.approx(expected["rates"])
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    assert report["mean_macs"] == pytest.approx(expected["mean_macs"]) and report["static_macs"] > report["mean_macs"] * 0
    lat = report["latency"]
    for key in ("batch1", "batch8"):
        assert lat[key]["static"]["mean_ms"] > 0 and lat[key]["dynamic"]["p90_ms"] >= lat[key]["dynamic"]["median_ms"]
        assert lat[key]["speedup_mean"] == pytest.approx(lat[key]["static"]["mean_ms"] / lat[key]["dynamic"]["mean_ms"])
    assert lat["batch1"]["static"]["samples"] == 12 and lat["batch8"]["static"]["samples"] == 2


def test_samples_are_real_rows_of_the_loader(loaders):
    rows = samples_of(loaders[2], 5)
    first = next(iter(loaders[2]))[0]
    assert len(rows) == 5 and all(r.shape == (1, 1, 8, 8) for r in rows) and torch.equal(rows[3], first[3:4])
    assert samples_of(loaders[2], 3, size=64) == []  # batches of 16 cannot give 64


def test_per_sample_latency_times_every_model_on_every_input():
    calls = {"a": 0, "b": 0}

    def model(name):
        def run(x):
            calls[name] += 1
            return x
        return run

    out = per_sample_latency({"a": model("a"), "b": model("b")}, [torch.zeros(1)] * 7, warmup=2)
    assert calls == {"a": 9, "b": 9} and out["a"]["samples"] == 7
