"""ONNX export: every registered model exports and passes parity, fp32 and int8; failures name the layer."""

import copy
import pickle

import pytest
import torch
from torch import nn

from slimkit.export import (
    FP32,
    ExportError,
    OrtModule,
    check_parity,
    export_onnx,
    load_onnx,
    onnx_bytes,
    onnx_ops,
    report_of,
)
from slimkit.models import MODELS, build_model
from slimkit.quantization import StaticInt8, quantize


def _batch(splits, n=32):
    return torch.stack([splits.train[i][0] for i in range(n)])


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_exports_fp32_with_parity(name, tiny_splits, tmp_path):
    model = build_model(name, input_size=8, num_classes=3).eval()
    x = _batch(tiny_splits)
    path = export_onnx(model, tmp_path / f"{name}.onnx", x[:2])
    report = check_parity(model, load_onnx(path), x, tolerance=FP32, name=name)
    assert report.passed and report.samples == 32 and report.agreement == 1.0


@pytest.mark.parametrize("name,knobs", [("resnet", {"depth": 8}), ("mobilenet", {"channels": [8, 16], "strides": [1, 2]}),
                                        ("lenet5", {}), ("mlp", {"hidden": [16]})])
def test_int8_qdq_export_for_each_architecture(name, knobs, tiny_splits):
    # the CNN is covered in tests/quantize; here residual adds, depthwise convs, pools and MLPs
    model = build_model(name, input_size=8, num_classes=3, **knobs).eval()
    q = quantize(model, StaticInt8(calibration_batches=1), [(_batch(tiny_splits), None)])
    assert report_of(q, "quantize")["parity"]["passed"] and report_of(q, "quantize")["float_layers"] == {}
    assert onnx_ops(q)["QuantizeLinear"] >= 2


def test_int8_file_is_about_4x_smaller(tiny_splits, tmp_path):
    model = build_model("cnn", channels=[32, 64], hidden=256, input_size=8, num_classes=3).eval()
    x = _batch(tiny_splits)
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", x)
    int8 = export_onnx(quantize(model, StaticInt8(calibration_batches=1), [x]), tmp_path / "int8.onnx", x)
    ratio = fp32.stat().st_size / int8.stat().st_size
    assert 3.5 < ratio < 4.2, ratio  # int8 weights; biases, scales and graph stay


class Weird(nn.Module):
    def forward(self, x):
        return torch.ops.slimkit_test.mystery(x)


@torch.library.custom_op("slimkit_test::mystery", mutates_args=())
def _mystery(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_mystery.register_fake
def _(x):
    return torch.empty_like(x)


def test_export_failure_names_the_op_and_the_layer(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4))
    model.add_module("odd", Weird())
    with pytest.raises(ExportError, match=r"ONNX export failed for Sequential at layer\(s\) odd \(slimkit_test.mystery.default\)"):
        export_onnx(model, tmp_path / "m.onnx", torch.randn(2, 1, 2, 2))
    assert not (tmp_path / "m.onnx").exists()  # nothing half-written


def test_ort_module_follows_torch_threads_and_survives_copies():
    module = OrtModule(onnx_bytes(nn.Sequential(nn.Linear(3, 2)), torch.zeros(2, 3)))
    x = torch.randn(4, 3)
    y = module(x)
    torch.set_num_threads(2)
    assert torch.equal(module(x), y) and sorted(module._sessions) == [1, 2]
    for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert clone._sessions == {} and torch.equal(clone(x), y)


def test_load_onnx_missing_file(tmp_path):
    with pytest.raises(ExportError, match="no ONNX file"):
        load_onnx(tmp_path / "nope.onnx")
