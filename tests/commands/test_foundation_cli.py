"""The foundation commands end to end, on tiny data: train, evaluate, compare, quickstart, errors."""

import json

import numpy as np
import pytest

from slimkit.cli import main
from slimkit.commands._common import parse_model_spec
from slimkit.errors import ConfigError

TINY = ["--limit", "120", "--epochs", "1", "--no-progress", "--batch-size", "32"]


def test_datasets_and_models_list_every_registered_name(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("fashion-mnist", "mnist", "digits", "synthetic"))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "390,634" in out and all(n in out for n in ("mlp", "lenet5", "cnn", "resnet", "mobilenet"))


def test_train_evaluate_compare_round_trip(tmp_path, capsys):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["train", "--model", "cnn:channels=[4,8],hidden=16", "--dataset", "digits", "--out", a, *TINY]) == 0
    assert main(["train", "--model", "mlp:hidden=[16]", "--dataset", "digits", "--out", b, *TINY]) == 0
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["dataset"] == "digits" and 0.0 <= record["test"]["accuracy"] <= 1.0
    assert (tmp_path / "a" / "model" / "model.safetensors").is_file()
    assert len((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()) == 1
    capsys.readouterr()
    # evaluate reads the dataset from run.json when --dataset is not given
    assert main(["evaluate", a, "--limit", "120", "--json", str(tmp_path / "eval.json")]) == 0
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["accuracy"] == pytest.approx(record["test"]["accuracy"])
    assert set(metrics["robustness"]) >= {"clean", "shift_2"}
    assert main(["compare", a, b, "--limit", "120", "--repeats", "2", "--json", str(tmp_path / "cmp.json")]) == 0
    result = json.loads((tmp_path / "cmp.json").read_text())
    assert result["ratios"]["params_ratio"] == pytest.approx(result["cost"]["A"]["params"] / result["cost"]["B"]["params"])
    assert "x smaller" in capsys.readouterr().out


def test_train_on_users_npz(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.normal(size=(90, 8, 8)) + y[:, None, None]).astype("float32")
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp:hidden=[8]", "--dataset", str(tmp_path / "mine.npz"), "--out", str(out),
                 "--epochs", "1", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["test"]["accuracy"] > 0


def test_quickstart_trains_both_and_reuses_them(fake_idx_data, tmp_path, capsys):
    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--epochs", "1", "--no-progress", "--batch-size", "16", "--repeats", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "teacher vs student" in first and (out / "compare.json").is_file()
    assert main(args) == 0
    assert "teacher: reusing" in capsys.readouterr().out


def test_errors_are_one_line_with_hint(capsys, tmp_path):
    assert main(["train", "--model", "cnn:chanels=[4]", "--dataset", "digits", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model 'cnn' has no knob 'chanels'. Did you mean 'channels'?")
    assert "hint: valid knobs" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "neither a slimkit run nor a saved model" in capsys.readouterr().err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset"):
        main(["--debug", "train", "--dataset", "fashion-mnistt", "--out", str(tmp_path)])


def test_every_command_has_help(capsys):
    from slimkit.commands import COMMANDS

    for name in COMMANDS.names():
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: slimkit " + name in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cnn", ("cnn", {})),
        ("cnn:channels=[8,16],hidden=16", ("cnn", {"channels": [8, 16], "hidden": 16})),
        ("mlp:hidden=[300, 100],dropout=0.5", ("mlp", {"hidden": [300, 100], "dropout": 0.5})),
    ],
)
def test_model_spec_parsing(text, expected):
    assert parse_model_spec(text) == expected


def test_model_spec_without_equals_is_explained():
    with pytest.raises(ConfigError, match="is not key=value"):
        parse_model_spec("cnn:channels")


def test_quickstart_resumes_only_a_checkpoint_with_the_same_settings(tmp_path, tiny_splits):
    from slimkit.commands.quickstart import resumable
    from slimkit.data import make_loaders
    from slimkit.models import build_model
    from slimkit.train import TrainConfig, Trainer

    config = TrainConfig(epochs=1, progress=False)
    loaders = make_loaders(tiny_splits, batch_size=32)
    Trainer(build_model("mlp", hidden=[4], input_size=8, num_classes=3), config, out_dir=tmp_path).fit(loaders.train)
    assert resumable(tmp_path / "last.pt", config)
    assert not resumable(tmp_path / "last.pt", config.replace(lr=0.1))
    assert not resumable(tmp_path / "missing.pt", config)
    (tmp_path / "last.pt").write_bytes(b"torn")
    assert not resumable(tmp_path / "last.pt", config)
