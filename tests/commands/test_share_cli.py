import json

import torch

from slimkit.cli import main
from slimkit.models import build_model
from slimkit.rundir import write_run

DATA = ["--limit", "120", "--batch-size", "32"]


def test_share_and_deep_compression(tmp_path, capsys):
    torch.manual_seed(0)
    run = str(write_run(tmp_path / "base", build_model("mlp", hidden=[32], input_size=8), {"dataset": "digits"}))
    out = tmp_path / "shared"
    assert main(["share", run, "--bits", "3", "--out", str(out), *DATA]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["after"]["bytes"] == (out / "model.skc").stat().st_size < record["before"]["bytes"] / 5
    assert "x smaller" in capsys.readouterr().out
    out = tmp_path / "dc"
    assert main(["share", run, "--bits", "4", "--sparsity", "*=0.8", "--out", str(out), *DATA]) == 0
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["fp32", "pruned", "clustered", "huffman"]
    assert "huffman" in capsys.readouterr().out
