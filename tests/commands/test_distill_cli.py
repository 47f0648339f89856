"""`slimkit distill` end to end on tiny data, and its errors for bad specs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from clitools import QUICK, final, stage

from slimkit.cli import main
from slimkit.recipe.runfolder import load_run_model

TINY = ["--epochs", "1", "--threads", "1", *QUICK]


def test_distill_writes_a_run_measured_against_the_teacher(trained, tmp_path):
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(trained), "--student", "width=0.5", "--method", "dkd",
                 "--out", str(out), *TINY]) == 0  # the dataset comes from the teacher's run
    record = stage(out)
    assert record["data"]["config"]["name"] == "digits" and record["info"]["teacher_cache"] == "memory"
    assert [t["name"] for t in record["config"]["losses"]] == ["ce", "dkd"]
    assert record["config"]["student"]["knobs"]["width"] == 0.5 and len(record["history"]) == 1
    assert final(out)["original"]["folder"] == "00-source"  # the teacher as loaded
    student = load_run_model(out)
    assert student(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert record["vs_original"]["params_ratio"] > 1


def test_feature_method_two_teachers_and_a_student_view(trained, tmp_path):
    out = tmp_path / "at"
    assert main(["distill", "--teacher", str(trained), "--teacher", str(trained), "--method", "at",
                 "--student", "cnn:channels=[4],hidden=8", "--student-view", "downsample:size=4",
                 "--teacher-weighting", "confidence", "--cache", "disk", "--out", str(out), *TINY]) == 0
    config = stage(out)["config"]
    assert [t["name"] for t in config["losses"]] == ["kd", "ce", "at"] and len(config["teachers"]) == 1
    assert config["losses"][2]["teacher"] == "features.1"  # the default pairing
    assert config["student_view"] == {"name": "downsample", "size": 4} and config["teacher_weighting"] == "confidence"
    assert len(list(out.glob("01-distill/train/teacher_cache/*.safetensors"))) == 2
    assert load_run_model(out)(torch.zeros(1, 1, 4, 4)).shape == (1, 10)  # built for its view


@pytest.mark.parametrize(("args", "message"), [
    (["--student", "width=0.5,hidden=3"], "takes only width and depth"),
    (["--student", "cnnn:width=0.5"], "Did you mean 'cnn'"),
    (["--method", "at", "--features", "features.0"], "is not student_path=teacher_path"),
    (["--method", "fitnet", "--features", "features.9=features.0"], "no module 'features.9'"),
    (["--features", "features.0=features.0"], "only used by feature methods"),
    (["--student-view", "blur:size=3"], "unknown input view 'blur'"),
    (["--dataset", "synthetic"], "failed in module 'classifier.fc1' (Linear) on inputs [input: ("),
])
def test_bad_input_gives_one_line_errors(trained, tmp_path, capsys, args, message):
    code = main(["distill", "--teacher", str(trained), "--out", str(tmp_path / "x"), *TINY, *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_class_count_mismatch_names_both_counts(trained, tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "three.npz", x=rng.normal(size=(60, 8, 8)).astype("float32"), y=np.arange(60) % 3)
    code = main(["distill", "--teacher", str(trained), "--dataset", str(tmp_path / "three.npz"),
                 "--out", str(tmp_path / "x"), *TINY])
    assert code == 2
    assert "predicts 3 classes but" in capsys.readouterr().err
