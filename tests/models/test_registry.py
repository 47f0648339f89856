"""Every registered model x every input size it supports: shape, gradients, sizes, names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.models import MODELS, build_model

CASES = [(name, size) for name in MODELS.names() for size in MODELS.meta(name)["input_sizes"]]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_holds_the_contract_names() -> None:
    assert {"cnn", "lenet5", "mlp", "mobilenet", "resnet"} <= set(MODELS.names())


@pytest.mark.parametrize("name", MODELS.names())
def test_meta_is_complete(name: str) -> None:
    meta = MODELS.meta(name)
    assert isinstance(meta["doc"], str) and meta["doc"] and "\n" not in meta["doc"]
    assert set(meta["input_sizes"]) == {28, 8}
    assert isinstance(meta["params"], int) and meta["params"] > 0


@pytest.mark.parametrize(("name", "size"), CASES)
def test_forward_shape(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_size=size, num_classes=7)
    out = model(torch.randn(3, 1, size, size))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "size"), CASES)
def test_backward_reaches_every_parameter(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, input_size=size)
    x, y = torch.randn(4, 1, size, size), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("name", MODELS.names())
def test_documented_param_count_is_real(name: str) -> None:
    assert n_params(build_model(name)) == MODELS.meta(name)["params"]


@pytest.mark.parametrize("name", MODELS.names())
def test_in_channels_knob(name: str) -> None:
    out = build_model(name, in_channels=3, input_size=8).eval()(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", MODELS.names())
def test_width_knob_shrinks_params_monotonically(name: str) -> None:
    counts = [n_params(build_model(name, width=w)) for w in (1.5, 1.0, 0.75, 0.5, 0.25)]
    assert counts == sorted(counts, reverse=True)
    assert len(set(counts)) == len(counts)


@pytest.mark.parametrize("name", MODELS.names())
def test_stable_readable_names(name: str) -> None:
    model = build_model(name)
    children = dict(model.named_children())
    assert isinstance(children["features"], nn.Sequential)
    assert isinstance(children["classifier"], nn.Sequential)
    assert isinstance(model.get_submodule("classifier.out"), nn.Linear)
    assert any(isinstance(m, nn.Flatten) for m in model.modules())
    # No module is shared: hooks and pruning address each layer by exactly one name.
    assert len(list(model.modules())) == len(list(model.named_modules(remove_duplicate=False)))


@pytest.mark.parametrize("name", ["cnn", "resnet", "mobilenet"])
def test_batchnorm_follows_every_conv(name: str) -> None:
    model = build_model(name)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    bns = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert convs and all(c.replace("conv", "bn") in bns for c in convs)
    assert all(model.get_submodule(c).bias is None for c in convs)


@pytest.mark.parametrize("name", ["lenet5", "cnn"])
def test_conv_heads_flatten_before_linear(name: str) -> None:
    children = list(build_model(name).classifier.named_children())
    assert children[0][0] == "flatten" and isinstance(children[1][1], nn.Linear)


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnt'\. Did you mean 'resnet'\?"):
        build_model("resnt")
