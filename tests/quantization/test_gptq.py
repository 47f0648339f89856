"""GPTQ rounding: weights land on their grid, layer outputs stay closer than nearest rounding,
and GPTQ-rounded low-bit models save, pack and reload exactly."""

import torch
from torch import nn

from slimkit.export import load_model, report_of, save_model
from slimkit.quantization import (
    LayerPlan,
    LowBit,
    dequantize_weight,
    load_packed,
    quantize,
    quantize_weight,
    save_packed,
)
from slimkit.quantization.gptq import _round_matrix, gptq_round, grid
from slimkit.quantization.ptq import float_copy


def test_gptq_keeps_the_layer_output_closer_than_nearest_rounding():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(32, 32, generator=g)
    x = torch.randn(512, 32, generator=g) @ mix  # correlated inputs: where error compensation pays
    w = torch.randn(16, 32, generator=g)
    scale, zero = grid(w, 4, 8, True)
    q = _round_matrix(w, x.T @ x / len(x), scale, zero, 4, 8)
    nearest = dequantize_weight(*quantize_weight(w, LayerPlan(4, 8), scale, zero), LayerPlan(4, 8))
    codes, _, _ = quantize_weight(q, LayerPlan(4, 8), scale, zero)
    assert torch.allclose(dequantize_weight(codes, scale, zero.to(torch.uint8), LayerPlan(4, 8)), q, atol=1e-6)
    assert (x @ (q - w).T).pow(2).mean() < 0.7 * (x @ (nearest - w).T).pow(2).mean()


def test_gptq_round_handles_convs_depthwise_and_linear_and_corrects_the_bias():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 5)).eval()
    batches = [torch.randn(16, 2, 6, 6) for _ in range(2)]
    reference = [model(x).detach() for x in batches]
    plans = {n: LayerPlan(4, None) for n in ("0", "2", "5")}
    rounded = float_copy(model, fold=False)
    grids = gptq_round(rounded, list(plans), batches, plans)
    for name, (scale, zero) in grids.items():
        w = rounded.get_submodule(name).weight.detach()
        codes, _, _ = quantize_weight(w, plans[name], scale, zero)
        assert torch.allclose(dequantize_weight(codes, scale, zero.to(torch.uint8), plans[name]), w.reshape(codes.shape), atol=1e-6)
    nearest = float_copy(model, fold=False)
    with torch.no_grad():
        for name, plan in plans.items():
            layer = nearest.get_submodule(name)
            layer.weight.copy_(dequantize_weight(*quantize_weight(layer.weight, plan), plan))
    err = [sum((m(x) - r).pow(2).mean() for x, r in zip(batches, reference)) for m in (rounded, nearest)]
    assert err[0] < err[1]


def test_gptq_lowbit_model_saves_packs_and_reloads_exactly(trained_cnn, loaders, test_batch, tmp_path):
    q = quantize(trained_cnn, LowBit(bits=4, group_size=16, calibration_batches=2), loaders.train)
    assert report_of(q, "quantize")["rounding"] == "gptq"
    out = q(test_batch)
    assert torch.allclose(load_model(save_model(q, tmp_path / "m"))(test_batch), out, atol=1e-6)
    packed = save_packed(q, tmp_path / "m.safetensors")
    base = float_copy(trained_cnn)
    assert torch.allclose(load_packed(packed, base)(test_batch), out, atol=1e-5)
    nearest = quantize(trained_cnn, LowBit(bits=4, group_size=16, calibration_batches=2, rounding="nearest"), loaders.train)
    assert report_of(nearest, "quantize")["rounding"] == "nearest"
