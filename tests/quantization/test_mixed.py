"""Mixed precision: sensitivity, greedy allocation under a budget, table and plot."""

import pytest
import torch
from torch.utils.data import DataLoader

from slimkit.errors import ModelError
from slimkit.export import report_of
from slimkit.quantization import MixedPrecision, allocate, quantize
from slimkit.quantization.mixed import LayerChoice, MixedPlan, layer_bytes


def test_allocation_by_hand():
    # two layers of 1000 weights (one group each); "a" is fragile, "b" is robust
    a = LayerChoice("a", 1000, 1, {32: 0.0, 8: 0.01, 4: 0.5, 2: 5.0})
    b = LayerChoice("b", 1000, 1, {32: 0.0, 8: 0.0, 4: 0.01, 2: 0.02})
    budget = layer_bytes(1000, 1, 8) + layer_bytes(1000, 1, 2)  # 1004 + 254
    allocate([a, b], [32, 8, 4, 2], budget)
    assert (a.bits, b.bits) == (8, 2)
    with pytest.raises(ModelError, match="cannot be met"):
        allocate([a, b], [32, 8, 4, 2], 100)


@pytest.mark.parametrize("budget", [0.15, 0.3])
def test_mixed_precision_meets_the_budget(budget, trained_cnn, loaders, test_batch, tmp_path):
    calib = DataLoader(loaders.splits.train, batch_size=32)  # unshuffled: the same batches every run
    q = quantize(trained_cnn, MixedPrecision(target_size=budget, calibration_batches=2), calib)
    plan = MixedPlan.from_dict(report_of(q, "quantize")["plan"])
    assert plan.total_bytes <= plan.budget_bytes == int(budget * plan.fp32_bytes)
    bits = plan.bits()
    assert set(bits) == {"features.0.conv", "features.1.conv", "classifier.fc1", "classifier.out"}
    assert all(b in (32, 8, 4, 2) for b in bits.values())
    for name, b in bits.items():  # the model computes with the chosen widths
        layer = q.get_submodule(name)
        assert hasattr(layer, "parametrizations") == (b != 32)
    with torch.no_grad():
        agree = float((q(test_batch).argmax(1) == trained_cnn(test_batch).argmax(1)).float().mean())
    assert agree > (0.9 if budget > 0.2 else 0.6)  # 0.15 puts most weights at 2 bits
    assert plan.table().row_count == 4
    assert plan.plot(tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"


def test_sensitivity_by_accuracy_is_nonnegative(trained_cnn, loaders):
    q = quantize(trained_cnn, MixedPrecision(metric="accuracy", budget=0.5, calibration_batches=2), loaders.train)
    for layer in MixedPlan.from_dict(report_of(q, "quantize")["plan"]).layers:
        assert all(v >= 0 for v in layer.sensitivity.values()) and layer.sensitivity[32] == 0
