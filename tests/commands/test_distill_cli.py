"""`slimkit distill` end to end on tiny data, and its errors for bad specs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slimkit.cli import main
from slimkit.rundir import load_run_model

TINY = ["--limit", "120", "--epochs", "1", "--no-progress", "--batch-size", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    assert main(["train", "--model", "cnn:channels=[8,16],hidden=16", "--dataset", "digits", "--out", str(out),
                 *TINY]) == 0
    return out


def test_distill_writes_a_run_and_reports_both_accuracies(teacher_run, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher_run), "--student", "width=0.5", "--method", "dkd",
                 "--out", str(out), *TINY]) == 0  # the dataset comes from the teacher's run.json
    printed = capsys.readouterr().out
    assert "teacher: test accuracy" in printed and "student: test accuracy" in printed
    record = json.loads((out / "run.json").read_text())
    assert record["dataset"] == "digits" and record["method"] == "dkd" and record["cache"] == "memory"
    assert [t["name"] for t in record["distill"]["losses"]] == ["ce", "dkd"]
    assert record["student"]["kwargs"]["width"] == 0.5 and len(record["history"]) == 1
    student = load_run_model(out)
    assert student(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in load_run_model(teacher_run).parameters())


def test_feature_method_two_teachers_and_a_student_view(teacher_run, tmp_path):
    out = tmp_path / "at"
    assert main(["distill", "--teacher", str(teacher_run), "--teacher", str(teacher_run), "--method", "at",
                 "--student", "cnn:channels=[4],hidden=8", "--student-view", "downsample:size=4",
                 "--teacher-weighting", "confidence", "--cache", "disk", "--out", str(out), *TINY]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["cache"] == "disk" and set(record["teachers_test"]) == {"teacher0", "teacher1"}
    assert [t["name"] for t in record["distill"]["losses"]] == ["kd", "ce", "at"]
    assert record["distill"]["losses"][2]["teacher"] == "features.1"  # the default pairing
    assert record["distill"]["student_view"] == {"name": "downsample", "size": 4}
    assert len(list((out / "teacher_cache").glob("*.safetensors"))) == 2
    assert load_run_model(out)(torch.zeros(1, 1, 4, 4)).shape == (1, 10)  # built for its view


@pytest.mark.parametrize("args, message", [
    (["--student", "width=0.5,hidden=3"], "takes only width and depth"),
    (["--student", "cnnn:width=0.5"], "Did you mean 'cnn'"),
    (["--method", "at", "--features", "features.0"], "is not student_path=teacher_path"),
    (["--method", "fitnet", "--features", "features.9=features.0"], "no module 'features.9'"),
    (["--features", "features.0=features.0"], "only used by feature methods"),
    (["--student-view", "blur:size=3"], "unknown input view 'blur'"),
    (["--dataset", "synthetic"], "the teacher cannot take input of shape (1, 28, 28)"),
])
def test_bad_input_gives_one_line_errors(teacher_run, tmp_path, capsys, args, message):
    code = main(["distill", "--teacher", str(teacher_run), "--out", str(tmp_path / "x"), *TINY, *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_class_count_mismatch_names_both_counts(teacher_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "three.npz", x=rng.normal(size=(60, 8, 8)).astype("float32"), y=np.arange(60) % 3)
    code = main(["distill", "--teacher", str(teacher_run), "--dataset", str(tmp_path / "three.npz"),
                 "--out", str(tmp_path / "x"), *TINY])
    assert code == 2
    assert "the student predicts 3 classes but the teacher predicts 10" in capsys.readouterr().err
