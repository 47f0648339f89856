import json

import torch

from slimkit.cli import main
from slimkit.models import build_model
from slimkit.rundir import load_run_model, write_run


def test_lighten_converts_and_recovers(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8, num_classes=10)
    run = str(write_run(tmp_path / "base", model, {"dataset": "digits"}))
    out = tmp_path / "light"
    assert main(["lighten", run, "--out", str(out), "--limit", "120", "--batch-size", "32"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert [c["layer"] for c in record["report"]["converted"]] == ["features.1.conv"]
    assert record["after"]["macs"] < record["before"]["macs"]
    assert 0 <= record["after"]["accuracy"] <= 1
    assert type(load_run_model(out).features[1].conv).__name__ == "DepthwiseSeparable"
    assert "single input channel" in capsys.readouterr().out
