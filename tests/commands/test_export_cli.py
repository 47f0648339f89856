"""`slimkit export RUN --format onnx --int8` on a tiny run over a fake Fashion-MNIST."""

import json

import pytest

from slimkit.cli import main
from slimkit.models import build_model
from slimkit.rundir import write_run


@pytest.fixture
def run(fake_idx_data, tmp_path):
    model = build_model("cnn", channels=[8, 16], hidden=32)
    return write_run(tmp_path / "teacher", model, {"command": "train", "dataset": "fashion-mnist"})


def test_onnx_fp32_and_int8_with_parity_sizes_and_latency(run, tmp_path):
    out = tmp_path / "export"
    assert main(["export", str(run), "--format", "onnx", "--format", "program", "--int8", "--calib", "32",
                 "--batch-size", "16", "--repeats", "2", "--out", str(out)]) == 0
    record = json.loads((out / "export.json").read_text())["artifacts"]
    assert set(record) == {"onnx", "program", "onnx-int8"}
    for row in record.values():
        assert row["bytes"] == (out / row["path"].split("/")[-1]).stat().st_size
        assert row["parity"]["passed"] and set(row["speedup"]) == {"1", "256"}
    assert record["onnx-int8"]["int8_parity"]["passed"]
    assert record["onnx-int8"]["bytes"] < record["onnx"]["bytes"] / 2.5


def test_export_failure_is_reported_not_raised(run, tmp_path, capsys, monkeypatch):
    from slimkit.export import ExportError
    from slimkit.export import onnx as onnx_module

    def broken(*args, **kwargs):
        raise ExportError("ONNX export failed for VGGNet at layer(s) features.0.conv (aten.conv2d)")

    monkeypatch.setattr(onnx_module, "onnx_bytes", broken)
    assert main(["export", str(run), "--no-latency", "--out", str(tmp_path / "e")]) != 0
    assert "features.0.conv" in capsys.readouterr().err
