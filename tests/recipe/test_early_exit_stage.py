"""The early_exit stage: its info holds what the report shows for a dynamic model, and the next
stage (and a resumed run) starts from the EarlyExitNet reloaded from the stage's files."""

import json

import pytest

from slimkit.recipe import Recipe, run_recipe
from slimkit.recipe.models import load_stage_model

EARLY_EXIT = {"type": "early_exit", "exits": ["features.0"], "train": {"epochs": 1}, "accuracy_drop": 5.0,
              "latency_samples": 8, "latency_batch": 8, "latency_batches": 1}


def test_early_exit_stage_reports_exits_macs_and_latency(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], EARLY_EXIT]
    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=True)
    info = json.loads((out / "02-early_exit" / "metrics.json").read_text())["info"]
    assert info["technique"] == "early_exit" and info["layers"] == ["features.0"]
    assert [row["exit"] for row in info["exits"]] == ["features.0", "final"]
    assert sum(row["rate"] for row in info["exits"]) == pytest.approx(1.0)
    assert info["calibration"]["budget"] == "accuracy_drop" and info["calibration"]["value"] == 5.0
    assert info["static_macs"] > 0 and 0 < info["macs_share"] <= 1.2
    for key in ("batch1", "batch8"):
        timing = info["latency"][key]
        assert timing["static"]["mean_ms"] > 0 and timing["dynamic"]["p90_ms"] > 0 and timing["speedup_mean"] > 0
    model = load_stage_model(out / "02-early_exit")
    assert type(model).__name__ == "EarlyExitNet" and model.thresholds.tolist() == pytest.approx(
        info["calibration"]["thresholds"])
    assert (out / "report.md").is_file()
