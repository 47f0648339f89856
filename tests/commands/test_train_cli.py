"""`slimkit train`, `evaluate`, `compare`, `quickstart` and the catalog commands, on tiny data; and the
run-folder rules every command follows (one format, no clobbering, resume)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clitools import DIGITS, QUICK, final, stage

from slimkit.cli import main
from slimkit.recipe.runfolder import load_run_model, run_data


def test_datasets_and_models_list_every_registered_name(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fashion-mnist", "mnist", "digits", "synthetic"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "390,634" in out and all(n in out for n in ("mlp", "lenet5", "cnn", "resnet", "mobilenet"))


def test_train_writes_a_recipe_run_that_evaluate_and_compare_read(trained, tmp_path, capsys):
    record = final(trained)
    assert (trained / "status.json").is_file() and (trained / "01-train" / "model" / "model.safetensors").is_file()
    assert json.loads((trained / "recipe.resolved.json").read_text())["stages"][0]["epochs"] == 2
    assert len(stage(trained)["history"]) == 2 and 0 <= record["final"]["quality"]["accuracy"] <= 1
    assert run_data(trained).name == "digits" and run_data(trained).limit == 160
    capsys.readouterr()
    # evaluate and compare read the dataset from the run when --dataset is not given
    assert main(["evaluate", str(trained), "--json", str(tmp_path / "eval.json")]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["accuracy"] == pytest.approx(record["final"]["quality"]["accuracy"])
    assert set(metrics["robustness"]) >= {"clean", "shift_2"}
    other = tmp_path / "mlp"
    assert main(["train", "--model", "mlp:hidden=[16]", *DIGITS, "--epochs", "1", "--out", str(other), *QUICK]) == 0
    assert main(["compare", str(trained), str(other), "--repeats", "2", "--json", str(tmp_path / "cmp.json")]) == 0
    result = json.loads((tmp_path / "cmp.json").read_text())
    assert result["ratios"]["params_ratio"] == pytest.approx(result["cost"]["A"]["params"] / result["cost"]["B"]["params"])
    assert "x smaller" in capsys.readouterr().out or "x larger" in capsys.readouterr().out


def test_set_and_flags_reach_the_recipe(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp:hidden=[8]", *DIGITS, "--epochs", "1", "--lr", "0.01", "--out", str(out),
                 "--set", "train.label_smoothing=0.1", *QUICK]) == 0
    resolved = json.loads((out / "recipe.resolved.json").read_text())
    assert resolved["stages"][0]["lr"] == 0.01 and resolved["stages"][0]["label_smoothing"] == 0.1


def test_train_on_users_npz(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.normal(size=(90, 8, 8)) + y[:, None, None]).astype("float32")
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp:hidden=[8]", "--dataset", str(tmp_path / "mine.npz"), "--out", str(out),
                 "--epochs", "1", *QUICK]) == 0
    assert final(out)["final"]["quality"]["accuracy"] > 0


def test_a_finished_run_or_a_users_folder_is_never_overwritten(trained, tmp_path, capsys):
    again = ["train", "--model", "cnn:channels=[8,16],hidden=16", *DIGITS, "--epochs", "2", "--threads", "1"]
    before = (trained / "01-train" / "model" / "model.safetensors").read_bytes()
    assert main([*again, "--out", str(trained), *QUICK]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "01-train" / "model" / "model.safetensors").read_bytes() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "best.pt").write_text("my own file")
    assert main(["train", "--model", "mlp:hidden=[4]", *DIGITS, "--epochs", "1", "--out", str(mine), *QUICK]) == 2
    assert "not a slimkit run (best.pt)" in capsys.readouterr().err and (mine / "best.pt").read_text() == "my own file"
    assert main(["train", "--model", "mlp:hidden=[4]", *DIGITS, "--epochs", "1", "--out", str(mine), "--force",
                 *QUICK]) == 0
    assert (mine / "best.pt").read_text() == "my own file" and (mine / "final.json").is_file()


def test_resume_of_a_finished_run_reruns_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "mlp:hidden=[8]", *DIGITS, "--epochs", "1", "--out", str(out), *QUICK]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    assert "epoch 1/1" not in capsys.readouterr().err


def test_quickstart_trains_both_and_reuses_them(fake_idx_data, tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--epochs", "1", "--no-progress", "--batch-size", "16", "--repeats", "2"]
    assert main(args) == 0
    assert "teacher vs student" in capsys.readouterr().out and (out / "compare.json").is_file()
    trained_at = (out / "teacher" / "01-train" / "model" / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "teacher" / "01-train" / "model" / "model.safetensors").stat().st_mtime_ns == trained_at
    assert load_run_model(out / "student")


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--model", "cnm"], "Did you mean 'cnn'?"),
    (["train", "--model", "cnn:chanels=[8]"], "no knob 'chanels'"),
    (["train", "--model", "cnn:width=0.5,width=0.25"], "given twice"),
    (["train", "--dataset", "fashion_mnist"], "Did you mean 'fashion-mnist'?"),
    (["train", "--epochs", "0"], "greater than or equal to 1"),
    (["evaluate", "nowhere"], "neither a slimkit run nor a saved model"),
])
def test_mistakes_are_one_line_errors(tmp_path, capsys, args, message):
    assert main([*args, *(["--out", str(tmp_path / "x")] if args[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
