"""The distillation benchmark's --quick run works and its JSON holds every figure the table shows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK_ROWS = {"student", "kd", "fitnet", "dkd", "dml", "born_again"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill-bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, str(ROOT / "bench" / "distill.py"), "--quick", "--out", str(out)],
                   check=True, env=env, timeout=240, capture_output=True)
    return json.loads((out / "distill.json").read_text()), (out / "distill.md").read_text()


def test_quick_rows_and_accuracies(quick):
    data, _ = quick
    assert data["benchmark"] == "distill" and data["quick"] is True and not data["errors"]
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    assert data["settings"]["seeds"] == 1 and data["settings"]["epochs"] == 1
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == QUICK_ROWS
    for r in rows.values():
        assert len(r["test_acc"]) == r["seeds"] == 1
        assert all(0.0 <= a <= 1.0 for a in r["test_acc"] + r["val_acc"])
        assert r["mean"] == pytest.approx(sum(r["test_acc"]) / len(r["test_acc"]))
        assert r["epoch_time_ratio"] > 0
    assert rows["student"]["epoch_time_ratio"] == pytest.approx(1.0)
    assert 0.0 <= data["teachers"]["teacher"]["test_acc"] <= 1.0


def test_quick_gap_closed_comes_from_the_row_means(quick):
    data, _ = quick
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["student"]["gap_closed"] is None
    checked = 0
    for r in rows.values():
        ref = r["gap_reference"]
        if ref is None:
            continue
        low, high = rows[ref["student"]]["mean"], data["teachers"][ref["teacher"]]["test_acc"]
        assert r["gap_closed"] == pytest.approx((r["mean"] - low) / (high - low))
        checked += 1
    assert checked == len(rows) - 1  # every method row, measured against student alone


def test_quick_timing_targets_and_markdown(quick):
    data, markdown = quick
    timing = data["timing"]
    assert set(timing["ratio"]) == {"student", "kd_cached", "kd_online"} and all(v > 0 for v in timing["ratio"].values())
    assert timing["ratio"]["student"] == pytest.approx(1.0)
    assert [t["target"][:4] for t in data["targets"]] == ["best", "DKD ", "offl"]
    assert all(isinstance(t["passed"], bool) for t in data["targets"])
    assert "QUICK" in markdown and "Gap closed" in markdown and "## Targets" in markdown
