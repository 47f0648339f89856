"""Reading a run folder: stages, original, final, Pareto points, benchmark points, formatting."""

import json

import pytest

from slimkit.errors import CheckpointError
from slimkit.report import read_run
from slimkit.report.collect import fmt_bytes, fmt_delta, fmt_int, fmt_times


def test_read_run_gathers_every_finished_stage(finished_run):
    run = read_run(finished_run)
    assert run.name == "report-demo" and run.batch_sizes == ["1", "4"]
    assert [s["type"] for s in run.stages] == ["train", "prune", "share", "export"]
    assert run.original["folder"] == "01-teacher" and run.final["summary"]
    labels = [p["label"] for p in run.points()]
    assert labels == ["original", "1. teacher", "2. prune", "3. share", "4. export"]
    export = run.points()[-1]
    assert export["bytes"] == (finished_run / "04-export" / "model.skc").stat().st_size


def test_benchmark_points_join_from_files_and_the_run_folder(finished_run, tmp_path):
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps({"points": [{"label": "peer", "accuracy": 0.5, "bytes": 1000, "latency_ms": {"1": 0.1}},
                                            {"label": "incomplete"}]}))
    run = read_run(finished_run, benchmarks=[bench])
    assert [p["label"] for p in run.benchmarks] == ["peer"] and run.points()[-1]["kind"] == "benchmark"
    with pytest.raises(CheckpointError, match="no benchmark file"):
        read_run(finished_run, benchmarks=[tmp_path / "missing.json"])


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="is not a recipe run"):
        read_run(tmp_path)


def test_formatting_helpers():
    assert fmt_int(1_234_567) == "1.23M" and fmt_int(999) == "999" and fmt_int(None) == "n/a"
    assert fmt_bytes(2048) == "2.0 KB" and fmt_bytes(3 << 20) == "3.0 MB"
    assert fmt_times(4.12) == "4.1x" and fmt_times(0.5, "faster", "slower") == "2.0x slower"
    assert fmt_delta(-0.2, 1, " pts") == "-0.2 pts" and fmt_times(None) == "n/a"
