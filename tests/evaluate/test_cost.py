import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from torch import nn
from torch.nn.utils import parametrize, prune

from slimkit.errors import ModelError
from slimkit.evaluate import (
    artifact_bytes,
    cost,
    count_macs,
    count_nonzero,
    count_params,
)


def small_conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),  # 4*8*8 outputs * 1*9     = 2304
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise: 4*8*8 * 1*9 = 2304
        nn.Conv2d(4, 4, 3, padding=1, groups=2),  # grouped:   4*8*8 * 2*9 = 4608
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 6, 1, stride=2),  # 6*4*4 * 4*1              = 384
        nn.Flatten(),
        nn.Linear(96, 10),  # 96*10                        = 960
    )


HAND_MACS = 2304 + 2304 + 4608 + 384 + 960


def test_macs_of_small_conv_net_equal_hand_count():
    model = small_conv_net()
    assert count_macs(model, torch.zeros(1, 1, 8, 8)) == HAND_MACS
    assert count_macs(model, torch.zeros(3, 1, 8, 8)) == 3 * HAND_MACS
    assert cost(model, torch.zeros(5, 1, 8, 8))["macs"] == HAND_MACS  # per sample


def test_count_params_and_nonzero():
    model = small_conv_net()
    expected = sum(p.numel() for p in model.parameters())
    assert count_params(model) == expected
    assert count_nonzero(model) == expected - 4  # BatchNorm's bias starts at zero
    with torch.no_grad():
        model[-1].weight.zero_()
    assert count_nonzero(model) == expected - 4 - 960
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert count_params(tied) == 16


def test_nonzero_sees_pruning_masks_and_parametrizations():
    model = nn.Linear(10, 10)
    prune.l1_unstructured(model, "weight", amount=0.3)
    assert count_params(model) == 110  # the mask is not a weight
    assert count_nonzero(model) == 110 - 30

    class Half(nn.Module):
        def forward(self, w):
            return w * (torch.arange(w.numel()).view_as(w) % 2)

    other = nn.Linear(10, 10)
    parametrize.register_parametrization(other, "weight", Half())
    assert count_params(other) == 110 and count_nonzero(other) == 110 - 50


def test_eager_quantized_modules_are_counted():
    quant = pytest.importorskip("torch.ao.quantization")
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quant.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        assert count_params(q) == count_params(model)
        assert count_macs(q, torch.zeros(1, 8)) == count_macs(model, torch.zeros(1, 8)) == 192


def test_artifact_bytes_is_real_file_size_and_grows(tmp_path):
    model = small_conv_net()
    path = tmp_path / "m.safetensors"
    save_model(model, str(path))
    assert artifact_bytes(model) == path.stat().st_size
    assert artifact_bytes(nn.Linear(100, 100)) > artifact_bytes(nn.Linear(10, 10)) + 4 * 9000


def test_artifact_bytes_custom_saver_and_failure():
    def two_files(model: nn.Module, path: Path) -> None:
        path.write_bytes(b"x" * 100)
        path.with_suffix(".json").write_text("{}")

    assert artifact_bytes(nn.Linear(2, 2), saver=two_files) == 102

    def broken(model, path):
        raise RuntimeError("disk full")

    with pytest.raises(ModelError, match="disk full"):
        artifact_bytes(nn.Linear(2, 2), saver=broken)
    with pytest.raises(ModelError, match="wrote nothing"):
        artifact_bytes(nn.Linear(2, 2), saver=lambda m, p: None)


def test_cost_dict():
    model = nn.Linear(10, 4)
    with torch.no_grad():
        model.weight[:2].zero_()
    c = cost(model, torch.zeros(2, 10))
    assert c["params"] == 44 and c["nonzero_params"] == 24
    assert c["sparsity"] == pytest.approx(20 / 44) and c["macs"] == 40 and c["bytes"] > 44 * 4
