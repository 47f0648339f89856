import json

import pytest
import torch

from slimkit.cli import main
from slimkit.models import build_model
from slimkit.rundir import load_run_model, write_run

DATA = ["--limit", "120", "--batch-size", "32"]


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8, num_classes=10)
    return str(write_run(tmp_path / "base", model, {"command": "train", "dataset": "digits"}))


def test_factorize_writes_a_smaller_run_and_prints_the_change(run, tmp_path, capsys):
    out = tmp_path / "fact"
    assert main(["factorize", run, "--method", "tucker", "--target-macs", "0.7", "--out", str(out), *DATA]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["after"]["macs"] <= 0.7 * record["before"]["macs"]
    assert record["after"]["params"] < record["before"]["params"]
    assert record["report"]["layers"][0]["layer"] == "features.1.conv"
    assert "features.0.conv" in capsys.readouterr().out  # the skipped stem is explained
    reloaded = load_run_model(out)
    assert type(reloaded.features[1].conv).__name__ == "TuckerConv"


def test_svd_rank_too_large_is_a_config_error(run, capsys):
    assert main(["factorize", run, "--method", "svd", "--rank", "999", "--epochs", "0", *DATA]) != 0
    assert "rank [999] is larger than the layer allows (max [8])" in capsys.readouterr().err
