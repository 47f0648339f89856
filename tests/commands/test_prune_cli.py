"""`slimkit prune` and `slimkit sensitivity` on a tiny run over a fake Fashion-MNIST."""

import json

import pytest
import torch

from slimkit.cli import main
from slimkit.export import load_model
from slimkit.models import build_model
from slimkit.rundir import load_run_model, write_run


@pytest.fixture
def run(fake_idx_data, tmp_path):
    model = build_model("cnn", channels=[8, 16], hidden=16)
    return write_run(tmp_path / "teacher", model, {"command": "train", "dataset": "fashion-mnist"})


def test_prune_to_a_macs_target_with_recovery(run, tmp_path):
    out = tmp_path / "pruned"
    code = main(["prune", str(run), "--method", "l1", "--target-macs", "0.5", "--finetune-epochs", "1",
                 "--out", str(out), "--round-to", "2", "--keep", "classifier.out", "--batch-size", "16"])
    assert code == 0
    record = json.loads((out / "prune.json").read_text())
    assert record["pruned"]["macs"] <= 0.5 * record["original"]["macs"]
    assert record["pruned"]["bytes"] < record["original"]["bytes"]
    assert record["config"]["target_macs"] == 0.5 and record["distill"] is True
    model = load_run_model(out)
    assert all(c % 2 == 0 for c in (model.features[0].conv.out_channels, model.features[1].conv.out_channels))
    assert json.loads((out / "run.json").read_text())["pruned"]["accuracy"] == record["pruned"]["accuracy"]


def test_unstructured_magnitude_writes_a_sparse_artifact(run, tmp_path):
    from slimkit.pruning import load_sparse

    out = tmp_path / "sparse-run"
    assert main(["prune", str(run), "--method", "magnitude", "--amount", "0.9", "--finetune-epochs", "0",
                 "--out", str(out)]) == 0
    record = json.loads((out / "prune.json").read_text())
    assert record["pruned"]["sparse_bytes"] < record["original"]["bytes"] / 3
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(load_sparse(out / "sparse")(x), load_model(out / "model")(x))


def test_sensitivity_writes_table_json_and_plot(run, tmp_path):
    out = tmp_path / "sens"
    assert main(["sensitivity", str(run), "--ratios", "0.25,0.5", "--target-macs", "0.6", "--out", str(out),
                 "--max-batches", "1"]) == 0
    data = json.loads((out / "sensitivity.json").read_text())
    assert set(data["accuracy"]) == {"features.0.conv", "features.1.conv", "classifier.fc1"}
    assert data["chosen"] and (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert "| features.0.conv |" in (out / "sensitivity.md").read_text()


def test_bad_target_is_a_clear_cli_error(run, tmp_path, capsys):
    assert main(["prune", str(run), "--target-macs", "1.5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "field 'target_macs'" in err and "less than 1" in err


def test_sensitivity_chosen_ratios_meet_the_target(run, tmp_path):
    out = tmp_path / "tuned"
    assert main(["prune", str(run), "--method", "l1", "--sensitivity", "--target-macs", "0.6",
                 "--finetune-epochs", "0", "--out", str(out)]) == 0
    record = json.loads((out / "prune.json").read_text())
    assert record["config"]["ratios"] and record["config"]["target_macs"] is None
    assert record["pruned"]["macs"] <= 0.6 * record["original"]["macs"]


def test_sensitivity_can_also_meet_a_latency_share(run, tmp_path, capsys):
    out = tmp_path / "fast"
    assert main(["prune", str(run), "--method", "l1", "--sensitivity", "--target-macs", "0.6", "--target-latency",
                 "0.9", "--latency-batch", "8", "--finetune-epochs", "0", "--out", str(out)]) == 0
    record = json.loads((out / "prune.json").read_text())
    assert record["config"]["ratios"] and record["pruned"]["macs"] <= 0.6 * record["original"]["macs"]
    assert main(["prune", str(run), "--target-macs", "0.6", "--target-latency", "0.9", "--out", str(tmp_path / "y")]) == 2
    assert "--target-latency is a sensitivity target" in capsys.readouterr().err
