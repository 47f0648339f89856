import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from slimkit.data import make_loaders
from slimkit.distillation import RecoveryConfig, recover
from slimkit.evaluate import count_macs, count_params
from slimkit.export import report_of
from slimkit.models import build_model
from slimkit.transform import LightenConfig, lighten, separable_from


def test_separable_block_costs_by_hand():
    conv = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    block = separable_from(conv)
    assert [n for n, _ in block.named_children()] == ["dw", "bn", "pw"]
    assert block.dw.groups == 32
    assert count_params(block) == 32 * 9 + 2 * 32 + 32 * 64
    x = torch.zeros(1, 32, 7, 7)
    assert count_macs(block, x) == 49 * (32 * 9 + 32 * 64)


def test_init_is_the_best_rank1_per_input_channel():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    block = separable_from(conv).eval()
    approx = block.pw.weight[:, :, 0, 0, None, None] * block.dw.weight[:, 0][None]
    err = (approx - conv.weight).detach()
    for i in range(4):  # residual energy = all but the top singular value of W[:, i]
        s = torch.linalg.svdvals(conv.weight[:, i].reshape(6, 9).detach())
        assert err[:, i].norm() == pytest.approx(float(s[1:].norm()), rel=1e-4)


def test_lighten_converts_skips_the_stem_and_recovers(tiny_splits):
    torch.manual_seed(0)
    model = build_model("cnn", channels=[8, 16], hidden=16, input_size=8, num_classes=3)
    loaders = make_loaders(tiny_splits, batch_size=32)
    light = lighten(copy.deepcopy(model), LightenConfig(), loaders.train)
    light = recover(light, model, loaders.train, RecoveryConfig(epochs=1))
    report = report_of(light, "lighten")
    assert [c["layer"] for c in report["converted"]] == ["features.1.conv"]
    assert report["skipped"][0]["layer"] == "features.0.conv" and "single input channel" in report["skipped"][0]["reason"]
    assert count_params(light) < count_params(model)
    # calibrated BN is an identity in eval mode: outputs stay finite and of the right shape
    assert light.eval()(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    stem = lighten(copy.deepcopy(model), LightenConfig(skip_single_channel=False))
    assert len(report_of(stem, "lighten")["converted"]) == 2


def test_calibrated_bn_is_identity_in_both_modes(tiny_splits):
    torch.manual_seed(0)
    model = build_model("cnn", channels=[4, 8], hidden=0, input_size=8, num_classes=3).eval()
    loader = DataLoader(tiny_splits.train, batch_size=64)
    light = lighten(copy.deepcopy(model), LightenConfig(), loader)
    block = light.features[1].conv
    x = next(iter(loader))[0]
    with torch.no_grad():
        feats = light.features[0](x)
        dw = block.dw(feats)
        torch.testing.assert_close(block.bn.eval()(dw), dw, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(block.bn.train()(dw), dw, atol=0.05, rtol=0.05)
