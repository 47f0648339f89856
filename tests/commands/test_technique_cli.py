"""Every technique command on one tiny trained run: each writes a run folder whose final stage
holds the compressed model, measured against the original; errors are one line."""

from __future__ import annotations

import json

import pytest
import torch
from clitools import QUICK, final, stage

from slimkit.cli import main
from slimkit.export import OrtModule, load_onnx
from slimkit.recipe.runfolder import load_run_model

X = torch.randn(3, 1, 8, 8)


def run(*args: str) -> int:
    return main([*args, *QUICK])


def test_prune_to_a_macs_target_with_recovery(trained, tmp_path):
    out = tmp_path / "pruned"
    assert run("prune", str(trained), "--method", "l1", "--target-macs", "0.5", "--finetune-epochs", "1",
               "--round-to", "2", "--keep", "classifier.out", "--out", str(out)) == 0
    record = stage(out)
    assert record["vs_original"]["macs_ratio"] >= 2 and record["config"]["structured"]["target_macs"] == 0.5
    assert record["config"]["structured"]["exclude"] == ["classifier.out"] and len(record["history"]) == 1
    model = load_run_model(out)
    assert all(c % 2 == 0 for c in (model.features[0].conv.out_channels, model.features[1].conv.out_channels))
    assert final(out)["original"]["folder"] == "00-source"  # measured against the model as loaded


def test_unstructured_magnitude_writes_a_sparse_artifact(trained, tmp_path):
    from slimkit.pruning import load_sparse

    out = tmp_path / "sparse"
    assert run("prune", str(trained), "--method", "magnitude", "--amount", "0.9", "--finetune-epochs", "0",
               "--out", str(out)) == 0
    record = stage(out)
    assert record["artifact"].endswith("sparse") and record["vs_original"]["size_ratio"] > 2
    assert torch.equal(load_sparse(out / "01-prune" / "sparse")(X), load_run_model(out)(X))


def test_sensitivity_chooses_ratios_that_meet_the_target(trained, tmp_path):
    out = tmp_path / "tuned"
    assert run("prune", str(trained), "--method", "l1", "--sensitivity", "--target-macs", "0.6",
               "--finetune-epochs", "0", "--out", str(out)) == 0
    record = stage(out)
    assert record["info"]["config"]["ratios"] and record["vs_original"]["macs_ratio"] >= 1 / 0.6
    sens = tmp_path / "sens"
    assert main(["sensitivity", str(trained), "--ratios", "0.25,0.5", "--target-macs", "0.6", "--out", str(sens),
                 "--max-batches", "1"]) == 0
    data = json.loads((sens / "sensitivity.json").read_text())
    assert set(data["accuracy"]) == {"features.0.conv", "features.1.conv", "classifier.fc1"} and data["chosen"]


@pytest.mark.parametrize(("args", "message"), [
    (["--target-macs", "1.5"], "less than 1"),
    (["--target-macs", "0.6", "--target-latency", "0.9"], "sensitivity_latency needs sensitivity: true"),
    (["--method", "magnitude", "--ratio", "0.5"], "--ratio is a structured-pruning flag"),
    (["--amount", "0.5"], "--amount and --scope are unstructured-pruning flags"),
])
def test_prune_mistakes_are_one_line_errors(trained, tmp_path, capsys, args, message):
    assert run("prune", str(trained), *args, "--out", str(tmp_path / "x")) == 2
    assert message in capsys.readouterr().err


def test_static_int8_writes_an_onnx_model_that_matches_the_run(trained, tmp_path):
    out = tmp_path / "int8"
    assert run("quantize", str(trained), "--calib", "64", "--observer", "percentile", "--out", str(out)) == 0
    quantized = stage(out, 0)
    assert quantized["config"]["static_int8"]["observer"] == "percentile"
    assert quantized["config"]["static_int8"]["calibration_batches"] == 2  # 64 samples in batches of 32
    assert quantized["info"]["parity"]["passed"]
    model = load_run_model(out)
    assert isinstance(model, OrtModule)
    assert torch.equal(model(X), load_onnx(out / "02-export" / "model.onnx")(X))


def test_mixed_precision_and_bad_bits(trained, tmp_path, capsys):
    out = tmp_path / "mixed"
    assert run("quantize", str(trained), "--scheme", "mixed", "--budget", "0.3", "--calib", "32", "--out", str(out)) == 0
    assert stage(out)["info"]["kind"] == "mixed"
    assert run("quantize", str(trained), "--scheme", "lowbit", "--bits", "9", "--out", str(tmp_path / "x")) == 2
    assert "2 to 8 bits" in capsys.readouterr().err
    assert run("quantize", str(trained), "--scheme", "dynamic-int8", "--observer", "mse", "--out", str(tmp_path / "y")) == 2
    assert "--observer does not apply to --scheme dynamic-int8" in capsys.readouterr().err


def test_export_writes_checked_artifacts_and_an_int8_one(trained, tmp_path):
    out = tmp_path / "export"
    assert run("export", str(trained), "--format", "onnx", "--format", "program", "--int8", "--calib", "32",
               "--out", str(out)) == 0
    names = [stage(out, i)["name"] for i in range(4)]
    assert names == ["onnx", "program", "int8", "onnx-int8"]
    for i in (0, 1, 3):
        record = stage(out, i)
        assert record["info"]["parity"]["passed"] if "parity" in record["info"] else i == 3
        assert record["cost"]["bytes"] == (out / record["artifact"]).stat().st_size
    assert stage(out, 3)["cost"]["bytes"] < stage(out, 0)["cost"]["bytes"]


def test_factorize_fuse_lighten_and_share(trained, tmp_path):
    assert run("factorize", str(trained), "--method", "svd", "--rank", "2", "--include", "classifier.*",
               "--epochs", "0", "--out", str(tmp_path / "svd")) == 0
    assert stage(tmp_path / "svd")["info"]["layers"] and stage(tmp_path / "svd")["vs_original"]["params_ratio"] > 1
    assert run("fuse", str(trained), "--out", str(tmp_path / "fused")) == 0
    fused = stage(tmp_path / "fused")
    assert fused["info"]["fused"] and fused["vs_original"]["accuracy_delta"] == pytest.approx(0.0, abs=1e-6)
    assert run("lighten", str(trained), "--epochs", "1", "--out", str(tmp_path / "light")) == 0
    assert stage(tmp_path / "light")["info"]["converted"]
    assert run("share", str(trained), "--bits", "3", "--epochs", "0", "--out", str(tmp_path / "shared")) == 0
    shared = stage(tmp_path / "shared")
    assert shared["artifact"].endswith("model.skc") and shared["vs_original"]["size_ratio"] > 4
    assert run("share", str(trained), "--bits", "2", "--sparsity", "*=0.5", "--epochs", "0",
               "--out", str(tmp_path / "dc")) == 0
    assert [stage(tmp_path / "dc", i)["type"] for i in range(3)] == ["prune", "share", "export"]
