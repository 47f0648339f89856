"""BatchNorm fusion and depthwise-separable conversion on architectures slimkit has never seen
(tests/zoo.py)."""

import copy
import warnings

import pytest
import torch
import zoo
from torch import nn
from transform import zoo_cases

from slimkit.evaluate import count_macs, count_params
from slimkit.export import report_of
from slimkit.modelio import take
from slimkit.transform import CompressionWarning, LightenConfig, fuse, lighten

#: Zoo models with a 3x3 conv that is neither depthwise, grouped nor a 1-channel stem.
LIGHTENABLE = {"branchy", "se", "resnet_proj", "dict_io", "two_inputs"}


def with_statistics(name):
    """A zoo model whose BatchNorms hold non-trivial statistics, as after training."""
    model = zoo_cases.build(name)
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                for tensor, low, high in ((m.running_mean, -1, 1), (m.running_var, 0.5, 2), (m.weight, 0.5, 1.5),
                                          (m.bias, -0.5, 0.5)):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model


@pytest.mark.parametrize("name", zoo.ZOO)
def test_fusion_folds_every_norm_and_keeps_the_outputs(name, tiny_splits):
    x = zoo_cases.inputs(zoo_cases.loader(name, tiny_splits))
    model = with_statistics(name)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    out = fuse(copy.deepcopy(model))
    report = report_of(out, "fuse")
    assert len(report["fused"]) == norms and not report["skipped"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in out.modules())
    torch.testing.assert_close(zoo_cases.outputs(out, x), zoo_cases.outputs(model, x), atol=1e-5, rtol=1e-4)
    assert count_params(out) < count_params(model) if norms else count_params(out) == count_params(model)


def test_a_model_fx_cannot_trace_falls_back_to_sequential_order_and_says_so():
    report = report_of(fuse(zoo_cases.build("transformer")), "fuse")
    assert report["found_by"].startswith("nn.Sequential order (fx could not trace the model:")
    assert report_of(fuse(zoo_cases.build("dict_io")), "fuse")["found_by"] == "fx"  # mapping inputs trace fine


@pytest.mark.parametrize("name", zoo.ZOO)
def test_lighten_converts_or_says_why(name, tiny_splits):
    batches = zoo_cases.loader(name, tiny_splits)
    x = zoo_cases.inputs(batches)
    model = zoo_cases.build(name)
    before, macs = zoo_cases.outputs(model, x), count_macs(model, take(x, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = lighten(model, LightenConfig(calibration_batches=2), batches)  # calibrated on the model's own inputs
    warned = [str(w.message) for w in caught if issubclass(w.category, CompressionWarning)]
    report = report_of(out, "lighten")
    assert all(s["reason"] for s in report["skipped"])
    if name in LIGHTENABLE:
        assert report["converted"] and not warned and count_macs(out, take(x, 1)) < macs
        block = out.get_submodule(report["converted"][0]["layer"])
        assert float(block.bn.running_var.mean()) != 1.0  # calibrated, not left at its initial statistics
    else:
        assert not report["converted"] and len(warned) == 1 and "the model is unchanged" in warned[0]
        assert zoo_cases.outputs(out, x).equal(before)


def test_transformed_foreign_models_reload_identically_in_a_fresh_process(tiny_splits, tmp_path):
    cases = {}
    for name in zoo.ZOO:
        batches = zoo_cases.loader(name, tiny_splits)
        model = fuse(with_statistics(name))
        if name in LIGHTENABLE:
            model = lighten(model, LightenConfig(calibration_batches=1), batches)
        cases[name] = (name, model, zoo_cases.inputs(batches))
    zoo_cases.assert_reloads(cases, tmp_path)
