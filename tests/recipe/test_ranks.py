"""`slimkit run --nproc 2`: the training stages run data-parallel under torchrun, rank 0 alone
writes the run folder, and the result matches a single-process run within tolerance (BatchNorm
statistics stay per rank on CPU, so it is close rather than exact)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slimkit.cli import main
from slimkit.recipe.ranks import RankPlan

from .conftest import TINY


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "stages": [{**TINY["stages"][0], "epochs": 2}, *TINY["stages"][1:]]}))
    return path


def history(run: Path, stage: str) -> list[float]:
    return [e["train_loss"] for e in json.loads((run / stage / "metrics.json").read_text())["history"]]


def test_two_processes_match_one(recipe, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", str(recipe), "--out", str(one), "--no-progress", "--no-report"]) == 0
    scratch_before = set(Path("/tmp").glob("slimkit-rank*"))
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "slimkit.cli", "run", str(recipe), "--out", str(two), "--nproc", "2",
                           "--no-progress", "--no-report"], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    status = json.loads((two / "status.json").read_text())
    assert status["state"] == "done" and [s["state"] for s in status["stages"]] == ["done"] * 3
    for stage in ("01-teacher", "02-distill", "03-prune"):
        a, b = history(one, stage), history(two, stage)
        assert len(a) == len(b) and all(abs(x - y) <= 0.05 * abs(x) + 1e-3 for x, y in zip(a, b)), (stage, a, b)
    final_one, final_two = (json.loads((run / "final.json").read_text()) for run in (one, two))
    assert abs(final_one["final"]["quality"]["accuracy"] - final_two["final"]["quality"]["accuracy"]) <= 0.1
    assert final_one["final"]["cost"]["params"] == final_two["final"]["cost"]["params"]  # the same pruned shape
    assert not list(tmp_path.glob("slimkit-rank*")) and set(Path("/tmp").glob("slimkit-rank*")) <= scratch_before
    # rank 0 printed the summary once; rank 1 printed nothing of its own
    assert done.stdout.count("smaller") == 1


def test_single_process_plan_writes_the_run_folder(tmp_path):
    plan = RankPlan(tmp_path)
    assert plan.main and not plan.distributed and plan.root == tmp_path
    plan.barrier()
    plan.close()
    assert tmp_path.is_dir()


def test_bad_nproc_is_refused_before_anything_starts(recipe, tmp_path, capsys):
    assert main(["run", str(recipe), "--out", str(tmp_path / "x"), "--nproc", "0"]) == 2
    assert "--nproc must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_two_machines_without_a_shared_disk_match_one_process(recipe, tmp_path):
    """Two 'machines': one process each, each in its own working folder (the relative --out is a
    different folder on each), joined by torchrun over TCP. Rank 1 never sees rank 0's files:
    stage results reach it over the process group. Same result as one process."""
    import socket

    one = tmp_path / "one"
    assert main(["run", str(recipe), "--out", str(one), "--no-progress", "--no-report"]) == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    procs = []
    for rank, cwd in enumerate(machines):
        cwd.mkdir()
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                   "-m", "slimkit.cli", "run", str(recipe), "--out", "runs/two", "--no-progress", "--no-report"]
        env = {**os.environ, "TMPDIR": str(cwd), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    two = machines[0] / "runs" / "two"
    assert not (machines[1] / "runs").exists()  # machine 1 wrote no run folder of its own
    for stage in ("01-teacher", "02-distill", "03-prune"):
        a, b = history(one, stage), history(two, stage)
        assert len(a) == len(b) and all(abs(x - y) <= 0.05 * abs(x) + 1e-3 for x, y in zip(a, b)), (stage, a, b)
    final_one, final_two = (json.loads((run / "final.json").read_text()) for run in (one, two))
    assert final_one["final"]["cost"]["params"] == final_two["final"]["cost"]["params"]
    assert abs(final_one["final"]["quality"]["accuracy"] - final_two["final"]["quality"]["accuracy"]) <= 0.1
