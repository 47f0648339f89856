"""Post-training int8 through ``quantize``: agreement with float, real int8 ops, bad input."""

import warnings

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError, DataError, ModelError
from slimkit.export import OrtModule, ParityError, load_model, onnx_ops, report_of, save_model
from slimkit.models import build_model
from slimkit.quantization import DynamicInt8, QuantizationWarning, StaticInt8, quantize


def agreement(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x).argmax(1) == b(x).argmax(1)).float().mean())


@pytest.fixture(scope="module")
def static_ort(trained_cnn, loaders):
    return quantize(trained_cnn, StaticInt8(calibration_batches=4), loaders.train)


def test_static_int8_runs_int8_onnx_and_agrees_with_float(static_ort, trained_cnn, test_batch):
    assert isinstance(static_ort, OrtModule)
    ops = onnx_ops(static_ort)
    assert ops["QuantizeLinear"] >= 4 and ops["DequantizeLinear"] >= 4 and ops["Conv"] == 2 and ops["Gemm"] == 2
    assert "BatchNormalization" not in ops  # Conv-BN folded first
    assert agreement(trained_cnn, static_ort, test_batch) > 0.9
    info = report_of(static_ort, "quantize")
    assert info["parity"]["passed"] and info["parity"]["agreement"] >= 0.97
    assert info["quantized_layers"] == ["features.0.conv", "features.1.conv", "classifier.fc1", "classifier.out"]
    assert info["float_layers"] == {} and info["calibration_samples"] == 4 * 32


def test_the_model_input_is_quantized_int8_symmetric_and_activations_uint8(static_ort):
    """As NNCF does: a signed input with zero point 0 lets OpenVINO's int8 stem skip zero-point
    compensation; activations after ReLU stay uint8."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(static_ort.onnx_bytes()).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    quants = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    first = [n for n in quants if n.input[0] == graph.input[0].name]
    assert len(first) == 1
    zero = inits[first[0].input[2]]
    assert zero.dtype.name == "int8" and int(zero) == 0
    assert all(inits[n.input[2]].dtype.name == "uint8" for n in quants if n not in first)


def test_input_model_is_untouched(static_ort, trained_cnn):
    assert isinstance(trained_cnn.features[0].bn, nn.BatchNorm2d)
    assert not any(c["kind"] == "fuse" for c in getattr(trained_cnn, "slimkit_history", []))


def test_quantized_model_saves_and_reloads_identically(static_ort, tmp_path, test_batch):
    folder = save_model(static_ort, tmp_path / "q")
    again = load_model(folder)
    assert isinstance(again, OrtModule)
    assert torch.equal(again(test_batch), static_ort(test_batch))
    assert (folder / "model.safetensors").stat().st_size < static_ort.onnx_model.numel() + 1000


@pytest.mark.parametrize("observer", ["minmax", "moving_average", "percentile", "entropy", "mse"])
def test_every_observer_calibrates_a_model_that_agrees(observer, trained_cnn, loaders, test_batch):
    q = quantize(trained_cnn, StaticInt8(observer=observer, calibration_batches=3, backend="x86", compile=False),
                 loaders.train)
    assert report_of(q, "quantize")["scheme"]["observer"] == observer
    assert agreement(trained_cnn, q, test_batch) > 0.9


@pytest.mark.parametrize("per_channel,symmetric,bits", [(False, True, 8), (True, False, 8), (True, True, 4)])
def test_weight_schemes(per_channel, symmetric, bits, trained_cnn, loaders, test_batch):
    config = StaticInt8(per_channel=per_channel, symmetric=symmetric, weight_bits=bits, calibration_batches=2,
                        backend="x86", compile=False)
    q = quantize(trained_cnn, config, loaders.train)
    assert agreement(trained_cnn, q, test_batch) > 0.9
    scales = [n for n in q.graph.nodes if "dequantize_per_channel" in str(n.target)]
    assert bool(scales) == per_channel
    if bits == 4:  # weights on a symmetric 15-level grid, stored in int8
        weights = [getattr(q, n.args[0].target) for n in scales]
        assert all(int(w.min()) >= -7 and int(w.max()) <= 7 for w in weights)


def test_exclude_keeps_layers_float_without_warning(trained_cnn, loaders):
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)
        q = quantize(trained_cnn, StaticInt8(exclude=["classifier.*"], calibration_batches=1, backend="x86",
                                             compile=False), loaders.train)
    assert report_of(q, "quantize")["quantized_layers"] == ["features.0.conv", "features.1.conv"]


class WithConv1d(nn.Module):
    """A 2-D CNN plus a Conv1d head branch that the x86 quantizer cannot quantize."""

    def __init__(self) -> None:
        super().__init__()
        self.net = build_model("cnn", channels=[4], hidden=0, input_size=8, num_classes=3)
        self.side = nn.Conv1d(1, 3, 1)

    def forward(self, x):
        y = self.net(x)
        return y + self.side(y[:, None, :1]).mean(1)


def test_unsupported_layers_warn_or_fail_when_strict(loaders):
    model = WithConv1d().eval()
    with pytest.warns(QuantizationWarning, match=r"kept in float.*side \(conv1d\)"):
        q = quantize(model, StaticInt8(calibration_batches=1, backend="x86", compile=False), loaders.train)
    assert report_of(q, "quantize")["float_layers"] == {"side": "conv1d"}
    with pytest.raises(ModelError, match=r"side \(conv1d\)"):
        quantize(model, StaticInt8(calibration_batches=1, backend="x86", compile=False, strict=True), loaders.train)


def test_bad_calibration_data(trained_cnn):
    with pytest.raises(DataError, match="empty"):
        quantize(trained_cnn, StaticInt8(), [])
    with pytest.raises(DataError, match="no calibration loader"):
        quantize(trained_cnn, StaticInt8())
    with pytest.raises(DataError, match=r"shape \(4, 1, 28, 28\).*\(N, 1, 8, 8\)"):
        quantize(trained_cnn, StaticInt8(), [(torch.randn(4, 1, 28, 28), torch.zeros(4))])
    # integer inputs are calibration data too (token IDs), but this CNN cannot run on them
    with pytest.raises(DataError, match=r"cannot run on calibration loader batches like input \(4, 1, 8, 8\) int64"):
        quantize(trained_cnn, StaticInt8(), [(torch.zeros(4, 1, 8, 8, dtype=torch.long), torch.zeros(4))])
    with pytest.raises(DataError, match=r"has inputs \['image'\], but the model takes \['input'\]"):
        quantize(trained_cnn, StaticInt8(), [({"image": torch.zeros(4, 1, 8, 8)}, torch.zeros(4))],
                 example_inputs=torch.zeros(1, 1, 8, 8))


def test_bad_configs(trained_cnn, loaders):
    with pytest.raises(ConfigError, match="2 to 8 bits"):
        StaticInt8(weight_bits=1)
    with pytest.raises(ConfigError, match=r"quantize\(\) takes a config object"):
        quantize(trained_cnn, {"scheme": "static-int8"}, loaders.train)
    with pytest.raises(ModelError, match="no Conv/Linear layer"):
        quantize(trained_cnn, StaticInt8(include=["nothing.*"]), loaders.train)


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_a_deployed_model_that_disagrees_fails_loudly(backend, trained_cnn, loaders, monkeypatch):
    from slimkit.export.onnx import onnx_bytes
    from slimkit.quantization import ptq, runtime

    other = build_model("cnn", channels=[4, 8], hidden=16, input_size=8, num_classes=3).eval()
    for module in (ptq, runtime):
        monkeypatch.setattr(module, "onnx_bytes", lambda model, x, **kw: onnx_bytes(other, x))
    with pytest.raises(ParityError, match=r"int8 (ONNX in )?onnxruntime vs PyTorch int8 graph: FAILED"):
        quantize(trained_cnn, StaticInt8(calibration_batches=1, backend=backend), loaders.train)


@pytest.mark.parametrize("backend", ["x86", "onnxruntime"])
def test_dynamic_int8_quantizes_linear_and_lists_the_rest(backend, trained_cnn, loaders, test_batch):
    with pytest.warns(QuantizationWarning, match=r"features.0.conv \(Conv2d\), features.1.conv \(Conv2d\)"):
        q = quantize(trained_cnn, DynamicInt8(backend=backend), loaders.train)
    assert report_of(q, "quantize")["quantized_layers"] == ["classifier.fc1", "classifier.out"]
    assert agreement(trained_cnn, q, test_batch) > 0.9
    if backend == "onnxruntime":
        assert onnx_ops(q).get("DynamicQuantizeLinear", 0) + onnx_ops(q).get("MatMulInteger", 0) >= 2
    else:
        assert type(q.classifier.fc1).__module__.startswith("torch.ao.nn.quantized.dynamic")
    with pytest.raises(ModelError, match="kept in float"):
        quantize(trained_cnn, DynamicInt8(backend=backend, strict=True), loaders.train)
