"""Low-bit weights: exact packing, real sizes, fake-quant accuracy, save and reload."""

import math

import pytest
import torch
from safetensors import safe_open

from slimkit.errors import ConfigError, DataError
from slimkit.export import load_model, report_of, save_model
from slimkit.models import build_model
from slimkit.quantization import (
    LayerPlan,
    LowBit,
    dequantize_weight,
    load_packed,
    pack_codes,
    quantize,
    quantize_weight,
    save_packed,
    unpack_codes,
)
from slimkit.quantization.lowbit import packed_bytes


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("count", [1, 7, 64, 1001])
def test_pack_unpack_round_trip_is_exact_and_minimal(bits, count):
    codes = torch.randint(0, 2**bits, (count,), generator=torch.Generator().manual_seed(bits), dtype=torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(count * bits / 8)
    assert torch.equal(unpack_codes(packed, bits, count), codes)


def test_quantize_weight_per_channel_by_hand():
    w = torch.tensor([[-1.0, 0.0, 0.6, 1.0], [0.0, 0.2, 0.45, 0.8]])
    codes, scale, zero = quantize_weight(w, LayerPlan(bits=4))
    # symmetric 4 bit: scale = max|w| / 7 per row, codes = round(w / scale) + 8
    assert torch.allclose(scale.squeeze(1), torch.tensor([1 / 7, 0.8 / 7]))
    assert codes.tolist() == [[1, 8, 12, 15], [8, 10, 12, 15]]
    back = dequantize_weight(codes, scale, zero, LayerPlan(bits=4))
    assert (back - w).abs().max() <= scale.max() / 2 + 1e-7


def test_group_wise_has_one_scale_per_group_and_handles_a_short_last_group():
    w = torch.randn(3, 10)
    codes, scale, zero = quantize_weight(w, LayerPlan(bits=4, group_size=4, symmetric=False))
    assert scale.shape == (3, 3) and zero.shape == (3, 3) and codes.shape == w.shape
    back = dequantize_weight(codes, scale, zero, LayerPlan(bits=4, group_size=4, symmetric=False))
    assert (back - w).abs().max() <= scale.max() / 2 + 1e-6
    # groups beat one scale per row on the same weights
    row = dequantize_weight(*quantize_weight(w, LayerPlan(4, None, False)), LayerPlan(4, None, False))
    assert (back - w).pow(2).mean() <= (row - w).pow(2).mean()


def test_packed_bytes_formula():
    assert packed_bytes(1000, 10, LayerPlan(bits=4)) == 500 + 40
    assert packed_bytes(1000, 10, LayerPlan(bits=3, symmetric=False)) == 375 + 40 + 10


@pytest.fixture(scope="module")
def w4(trained_cnn, loaders):
    return quantize(trained_cnn, LowBit(bits=4, calibration_batches=2), loaders.train)


def test_w4a8_agrees_with_float_and_its_file_is_the_packed_size(w4, trained_cnn, test_batch, tmp_path):
    with torch.no_grad():
        assert float((w4(test_batch).argmax(1) == trained_cnn(test_batch).argmax(1)).float().mean()) > 0.9
    path = save_packed(w4, tmp_path / "w4.safetensors")
    with safe_open(str(path), framework="pt") as f:
        for name in report_of(w4, "quantize")["quantized_layers"]:
            weight = w4.get_submodule(name).weight
            assert f.get_tensor(f"{name}.weight.codes").numel() == math.ceil(weight.numel() * 4 / 8)
            assert f.get_tensor(f"{name}.weight.scale").numel() == weight.shape[0]  # per channel
    fp32 = sum(4 * w4.get_submodule(n).weight.numel() for n in report_of(w4, "quantize")["quantized_layers"])
    assert report_of(w4, "quantize")["packed_weight_bytes"] < fp32 / 6  # 4 bits + one scale per channel


def test_packed_file_reloads_to_identical_outputs(w4, test_batch, tmp_path):
    from slimkit.transform import fuse

    path = save_packed(w4, tmp_path / "w4.safetensors")
    plain = fuse(build_model("cnn", channels=[4, 8], hidden=16, input_size=8, num_classes=3).eval())
    restored = load_packed(path, plain)
    for name in report_of(w4, "quantize")["quantized_layers"]:
        assert torch.equal(restored.get_submodule(name).weight, w4.get_submodule(name).weight)
    with torch.no_grad():
        assert torch.equal(restored(test_batch), w4(test_batch))


def test_saved_lowbit_model_replays_its_history(w4, tmp_path, test_batch):
    again = load_model(save_model(w4, tmp_path / "m"))
    assert torch.equal(again(test_batch), w4(test_batch))


def test_lowbit_bad_input(trained_cnn):
    with pytest.raises(ConfigError, match="2 to 8 bits"):
        LowBit(bits=1)
    assert report_of(quantize(trained_cnn, LowBit(bits=2, activation_bits=None)), "quantize")["kind"] == "lowbit"
    with pytest.raises(DataError, match="no calibration loader"):
        quantize(trained_cnn, LowBit(bits=4))  # 8-bit activations need calibration
