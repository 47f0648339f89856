"""`slimkit quantize RUN` on a tiny run over a fake Fashion-MNIST."""

import json

import pytest
import torch

from slimkit.cli import main
from slimkit.export import OrtModule, load_onnx
from slimkit.models import build_model
from slimkit.rundir import load_run_model, write_run


@pytest.fixture
def run(fake_idx_data, tmp_path):
    model = build_model("cnn", channels=[4, 8], hidden=16)
    return write_run(tmp_path / "teacher", model, {"command": "train", "dataset": "fashion-mnist"})


def test_static_int8_with_percentile_observer(run, tmp_path):
    out = tmp_path / "q"
    assert main(["quantize", str(run), "--scheme", "static-int8", "--calib", "48", "--observer", "percentile",
                 "--batch-size", "16", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["observer"] == "percentile" and record["config"]["calibration_batches"] == 3
    assert record["quantization"]["calibration_samples"] == 48 and record["quantization"]["parity"]["passed"]
    assert record["bytes"]["model.onnx"] == (out / "model.onnx").stat().st_size < record["bytes"]["float"]
    model = load_run_model(out)
    assert isinstance(model, OrtModule)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(model(x), load_onnx(out / "model.onnx")(x))


def test_mixed_precision_writes_packed_weights_and_a_plot(run, tmp_path):
    out = tmp_path / "mixed"
    assert main(["quantize", str(run), "--scheme", "mixed", "--budget", "0.2", "--calib", "32",
                 "--batch-size", "16", "--out", str(out)]) == 0
    record = json.loads((out / "run.json").read_text())
    plan = record["quantization"]
    assert plan["kind"] == "mixed" and (out / "mixed_precision.png").read_bytes()[:4] == b"\x89PNG"
    assert record["bytes"]["model.lowbit.safetensors"] < record["bytes"]["float"] / 3


def test_bad_bits_are_a_clean_error(run, tmp_path, capsys):
    code = main(["quantize", str(run), "--scheme", "lowbit", "--bits", "9", "--out", str(tmp_path / "x")])
    assert code != 0
    assert "2 to 8 bits" in capsys.readouterr().err
