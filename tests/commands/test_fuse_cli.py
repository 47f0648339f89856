import json

import torch

from slimkit.cli import main
from slimkit.models import build_model
from slimkit.rundir import load_run_model, write_run


def test_fuse_keeps_outputs_and_reloads(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("resnet", depth=8, input_size=8, num_classes=3).eval()
    run = str(write_run(tmp_path / "base", model, {"dataset": "digits"}))
    out = tmp_path / "fused"
    assert main(["fuse", run, "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["max_abs_diff"] < 1e-5 and len(record["fused"]) == 9
    assert record["after"]["params"] < record["before"]["params"]
    x = torch.randn(2, 1, 8, 8)
    assert (load_run_model(out)(x) - model(x)).abs().max() < 1e-5
    assert "fused 9 BatchNorms" in capsys.readouterr().out
