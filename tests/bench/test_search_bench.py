"""The search benchmark's --quick run works and its JSON holds every figure the table shows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("search-bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, str(ROOT / "bench" / "search.py"), "--quick", "--out", str(out)],
                   check=True, env=env, timeout=240, capture_output=True)
    return json.loads((out / "search.json").read_text()), (out / "search.md").read_text()


def test_quick_json_fields(quick):
    data, markdown = quick
    assert data["benchmark"] == "search" and data["quick"] is True
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    assert data["settings"]["seeds"] == 1 and data["settings"]["epochs"] == 1
    search = data["search"]
    assert search["trials"] == 4 and search["front"] and search["chosen"]["feasible"] and search["chosen"]["trained"]
    assert {r["trial"] for r in search["front"]} <= {r["trial"] for r in search["rows"]}
    assert search["bounds"]["latency_b256_ms"] == pytest.approx(search["bounds"]["default_latency_b256_ms"])
    for name in ("default", "searched"):
        final = data["final"][name]
        assert len(final["test_acc"]) == 1 and 0.0 <= final["mean"] <= 1.0 and final["params"] > 0 and final["macs"] > 0
        assert data["latency"][name]["1"] > 0 and data["latency"][name]["256"] > 0
    assert data["final"]["searched"]["spec"]["kwargs"]["widths"] == search["chosen"]["knobs"]["widths"]
    verdict = data["verdict"]
    assert isinstance(verdict["beats"], bool) and set(verdict["latency_ratio"]) == {"1", "256"}
    assert verdict["latency_ratio"]["1"] == pytest.approx(data["latency"]["searched"]["1"] / data["latency"]["default"]["1"])
    assert "QUICK" in markdown and "Pareto front" in markdown and "Verdict" in markdown


def test_quick_throughput_with_one_and_two_workers(quick):
    data, _ = quick
    runs = data["throughput"]["runs"]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["trials"] == 2 for r in runs)
    assert all(r["trials_per_hour"] > 0 and r["steady_trials_per_hour"] >= r["trials_per_hour"] for r in runs)
    assert data["throughput"]["speedup"] == pytest.approx(runs[1]["trials_per_hour"] / runs[0]["trials_per_hour"])
