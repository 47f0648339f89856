"""The quantization benchmark's --quick run works and writes every figure it promises."""

import pytest


def test_quick_benchmark_writes_results(quick_bench):
    data, markdown = quick_bench("quantize", "--threads", "1")
    assert data["benchmark"] == "quantize" and data["quick"] is True and data["dataset"] == "digits"
    assert {"cpu", "cores", "torch", "commit"} <= set(data["machine"])
    rows = data["models"]["cnn"]
    expected = {"fp32 (PyTorch eager)", "fp32 (ONNX Runtime)", "fp32 (OpenVINO)", "slimkit int8 (default: fastest runtime)",
                "slimkit int8 (ONNX Runtime)", "slimkit int8 per-tensor (ONNX Runtime)", "dynamic int8 (ONNX Runtime)",
                "W4A8 int8 kernels, nearest (per-channel)", "W4A8 packed, gptq (per-channel)",
                "W4A8 packed, nearest (group 64)", "mixed precision (budget 0.15)", "peer: PyTorch FX int8 (x86 qconfig)",
                "peer: ONNX Runtime quantize_static", "peer: OpenVINO + NNCF int8", "QAT int8 (KD, 1 seeds)"}
    assert expected <= set(rows)
    for label, row in rows.items():
        assert all(0.0 <= a <= 1.0 for a in row["accuracy"]) and row["bytes"] > 0, label
        assert set(row["vs_pytorch_fp32"]) == set(row["vs_ort_fp32"]) == {"1", "32"}, label
        assert all(v > 0 for v in row["vs_pytorch_fp32"].values()), label
    assert rows["fp32 (PyTorch eager)"]["vs_pytorch_fp32"]["1"] == 1.0
    assert rows["fp32 (ONNX Runtime)"]["accuracy"] == rows["fp32 (PyTorch eager)"]["accuracy"]
    assert rows["W4A8 packed, gptq (per-channel)"]["bytes"] < rows["slimkit int8 (ONNX Runtime)"]["bytes"] / 2
    assert rows["fp32 (PyTorch eager)"]["accuracy"][0] > 0.8  # the quick model does learn digits
    # the default int8 says which runtime it chose; ORT files list their int8 kernels after fusion
    assert rows["slimkit int8 (default: fastest runtime)"]["selection"]["chosen"]
    fused = rows["slimkit int8 (ONNX Runtime)"]["nodes"]["fused"]
    assert fused.get("QLinearConv", 0) >= 2 and fused.get("Conv", 0) == 0
    names = {t["target"] for t in data["targets"]}
    assert {"cnn: static int8 within 0.3 points of fp32", "cnn: static int8 >= 3.8x smaller than the fp32 ONNX file"} <= names
    assert any(n.startswith("cnn: static int8 at least as fast as the fastest peer") and n.endswith("batch 1") for n in names)
    size = next(t for t in data["targets"] if t["target"] == "cnn: static int8 >= 3.8x smaller than the fp32 ONNX file")
    assert size["met"] == (size["value"] >= 3.8) and size["value"] == pytest.approx(
        rows["fp32 (ONNX Runtime)"]["bytes"] / rows["slimkit int8 (default: fastest runtime)"]["bytes"])
    assert "| slimkit int8 (default: fastest runtime) |" in markdown and "## Targets" in markdown
    assert "Fastest int8 artifact - batch 1:" in markdown and "| fused: QLinearConv |" in markdown
    # int4: MatMulNBits against int8 on a Linear-heavy model, with its targets
    int4 = data["int4"]["rows"]
    assert any("MatMulNBits" in k for k in int4) and all(r["bytes"] > 0 for r in int4.values())
    assert any(t["target"].startswith("W4 weight-only with a real int4 kernel") for t in data["targets"])
    assert "## W4 weight-only with a real int4 kernel" in markdown
