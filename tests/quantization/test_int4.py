"""int4 on ONNX Runtime: MatMulNBits for Linear layers, int4 storage (size only) for convs,
parity with the fake-quantized PyTorch model, a file smaller than int8, honest reports."""

import pytest
import torch
import zoo
from torch import nn

from slimkit.errors import ConfigError
from slimkit.export import OrtModule, load_model, onnx_ops, report_of, save_model
from slimkit.quantization import DynamicInt8, LowBit, quantize
from slimkit.quantization.int4 import KERNEL, SIZE_ONLY

W4 = {"bits": 4, "activation_bits": None, "rounding": "nearest"}


def _mlp(width: int = 64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 40), nn.ReLU(),
                         nn.Linear(40, 3)).eval()


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 36, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv(x)))).flatten(1))


def _pair(model: nn.Module, x, **config):
    """The fake-quantized PyTorch model and the ONNX Runtime one, from the same rounding."""
    fake = quantize(model, LowBit(**{**W4, **config}), example_inputs=x)
    ort = quantize(model, LowBit(**{**W4, **config, "backend": "onnxruntime"}), example_inputs=x)
    return fake, ort


@pytest.mark.parametrize("group_size", [16, 32, 128])
@pytest.mark.parametrize("symmetric", [True, False])
def test_mlp_runs_matmulnbits_and_matches_the_fake_quant_model_exactly_in_float(group_size, symmetric):
    x = torch.randn(8, 1, 8, 8)
    fake, ort = _pair(_mlp(), x, group_size=group_size, symmetric=symmetric, accuracy_level=0)
    assert isinstance(ort, OrtModule)
    ops = onnx_ops(ort)
    assert ops["MatMulNBits"] == 3 and "Gemm" not in ops and "MatMul" not in ops
    with torch.no_grad():
        assert (ort(x) - fake(x)).abs().max() < 1e-5  # same codes, float compute: reordering only
    report = report_of(ort, "quantize")
    assert report["kernel_layers"] == ["1", "3", "5"] and report["size_only_layers"] == []
    assert all(entry["runs"] == KERNEL for entry in report["layers"].values())


def test_int8_compute_level_stays_close_and_agrees():
    x = torch.randn(16, 1, 8, 8)
    fake, ort = _pair(_mlp(), x, group_size=32, accuracy_level=4)
    with torch.no_grad():
        ref, out = fake(x), ort(x)
    assert 0 < (out - ref).abs().max() < 0.02 * ref.abs().max()  # int8 activations: close, not identical
    assert report_of(ort, "quantize")["parity"]["passed"]


def test_convs_are_size_only_and_linear_is_kernel():
    x = torch.randn(4, 1, 8, 8)
    fake, ort = _pair(ConvNet().eval(), x, group_size=32, symmetric=False, accuracy_level=0)
    ops = onnx_ops(ort)
    assert ops["MatMulNBits"] == 1 and ops["DequantizeLinear"] == 2 and ops["Conv"] == 2
    with torch.no_grad():
        assert (ort(x) - fake(x)).abs().max() < 1e-5
    layers = report_of(ort, "quantize")["layers"]
    assert {n: e["runs"] for n, e in layers.items()} == {"conv": SIZE_ONLY, "conv2": SIZE_ONLY, "fc": KERNEL}
    assert "size only" in layers["conv"]["detail"]


def test_trained_cnn_with_gptq_from_a_loader_agrees_and_reloads(trained_cnn, loaders, test_batch, tmp_path):
    ort = quantize(trained_cnn, LowBit(bits=4, group_size=16, activation_bits=None, backend="onnxruntime",
                                       calibration_batches=2), loaders.train)
    report = report_of(ort, "quantize")
    assert report["rounding"] == "gptq" and report["kernel_layers"] and report["size_only_layers"]
    with torch.no_grad():
        agree = (ort(test_batch).argmax(1) == trained_cnn(test_batch).argmax(1)).float().mean()
    assert agree > 0.9
    again = load_model(save_model(ort, tmp_path / "w4"))
    assert torch.equal(again(test_batch), ort(test_batch))


def test_three_dimensional_inputs_use_the_kernel_too():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16, bias=False)).eval()
    x = torch.randn(2, 5, 32)
    fake, ort = _pair(model, x, group_size=16, symmetric=False, accuracy_level=0)
    assert onnx_ops(ort)["MatMulNBits"] == 2 and "MatMul" not in onnx_ops(ort)
    with torch.no_grad():
        assert (ort(x) - fake(x)).abs().max() < 1e-5


@pytest.mark.parametrize("name", ["mixer", "transformer"])
def test_zoo_models_match_and_say_how_each_layer_runs(name):
    torch.manual_seed(0)
    model = zoo.build(name, num_classes=3, input_size=8).eval()
    with torch.no_grad():  # nn.TransformerEncoder clones one layer: equal weights would be merged on export
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    images = torch.rand(4, 1, 8, 8)
    x = zoo.tokenize(images) if name == "transformer" else images
    fake, ort = _pair(model, x, group_size=16, accuracy_level=0)
    with torch.no_grad():
        assert (ort(x) - fake(x)).abs().max() < 1e-4
    runs = {e["runs"] for e in report_of(ort, "quantize")["layers"].values()}
    assert KERNEL in runs and runs <= {KERNEL, SIZE_ONLY}
    assert onnx_ops(ort)["MatMulNBits"] == len(report_of(ort, "quantize")["kernel_layers"])


def test_file_is_smaller_than_the_int8_onnx_file():
    model, x = _mlp(width=256), torch.randn(4, 1, 8, 8)
    ort = quantize(model, LowBit(**W4, group_size=32, backend="onnxruntime"), example_inputs=x)
    int8 = quantize(model, DynamicInt8(), example_inputs=x)
    assert ort.onnx_model.numel() < 0.7 * int8.onnx_model.numel()


@pytest.mark.parametrize(("update", "field"), [
    ({"bits": 3}, "bits"),
    ({"activation_bits": 8}, "activation_bits"),
    ({"group_size": None}, "group_size"),
    ({"group_size": 48}, "group_size"),
    ({"group_size": 512}, "group_size"),
])
def test_what_the_kernel_cannot_take_is_refused_naming_the_field(update, field):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        LowBit(**{**W4, "group_size": 32, "backend": "onnxruntime", **update})


def test_a_model_without_example_inputs_is_refused():
    with pytest.raises(ConfigError, match="example inputs"):
        quantize(_mlp(), LowBit(**W4, group_size=32, backend="onnxruntime"))


def test_a_recipe_reports_four_bits_per_layer():
    from slimkit.recipe.stages.quantize import _bits

    config = LowBit(**W4, group_size=32, backend="onnxruntime")
    ort = quantize(_mlp(), config, example_inputs=torch.randn(2, 1, 8, 8))
    assert _bits(ort, config) == {name: {"bits": 4} for name in ("1", "3", "5")}
