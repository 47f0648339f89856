import copy

import numpy as np
import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.export import report_of
from slimkit.export.serialize import load_model, save_model
from slimkit.models import MODELS, build_model
from slimkit.sharing import (
    ShareConfig,
    SharedWeight,
    bake,
    initial_centroids,
    kmeans_1d,
    share,
    shared_layers,
)
from slimkit.transform import CompressionWarning


def tiny(name):
    torch.manual_seed(0)
    return build_model(name, input_size=8, num_classes=3)


@pytest.mark.parametrize("name", MODELS.names())
def test_at_most_k_unique_values_per_layer(name):
    model = share(tiny(name), ShareConfig(bits=2, include=["features.*", "classifier.*"], exclude=["*.dw.*"]))
    assert report_of(model, "share")["layers"]
    for row in report_of(model, "share")["layers"]:
        weight = model.get_submodule(row["layer"]).weight
        assert len(torch.unique(weight)) <= 4


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_inits_and_kmeans(init):
    values = np.concatenate([np.full(50, -1.0), np.full(50, 2.0)]) + np.random.default_rng(0).normal(0, 0.01, 100)
    start = initial_centroids(values, 2, init, seed=1)
    assert len(start) == 2
    centroids, labels = kmeans_1d(values, 2, init=init, seed=1)
    assert sorted(np.round(centroids, 1).tolist()) == [-1.0, 2.0]
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1


def test_centroid_gradient_is_the_sum_over_its_cluster():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, 0.11, 0.9, 0.91]]))
    model = share(nn.Sequential(layer), ShareConfig(k=2))
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    model(x).sum().backward()
    shared = layer.parametrizations.weight[0]
    assert isinstance(shared, SharedWeight)
    assert shared.centroids.grad.tolist() == pytest.approx([1 + 2, 3 + 4])  # dL/dw_i = x_i, summed per cluster


def test_pruned_zeros_stay_zero_through_training():
    layer = nn.Linear(20, 5)
    with torch.no_grad():
        layer.weight[:, :10] = 0
    model = share(nn.Sequential(layer), ShareConfig(bits=2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 20)).pow(2).sum().backward()
        opt.step()
    assert torch.all(layer.weight[:, :10] == 0)
    assert len(torch.unique(layer.weight[:, 10:])) <= 4


def test_k_larger_than_the_weights_is_an_error():
    with pytest.raises(ConfigError, match=r"layer '0' has 6 weights, fewer than k=8"):
        share(nn.Sequential(nn.Linear(3, 2)), ShareConfig(bits=3))


def test_shared_model_saves_reloads_and_bakes(tmp_path):
    model = share(tiny("lenet5").eval(), ShareConfig(bits=3))
    x = torch.randn(2, 1, 8, 8)
    save_model(model, tmp_path / "m")
    reloaded = load_model(tmp_path / "m")
    assert torch.equal(reloaded(x), model(x))
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    plain = copy.deepcopy(model)
    bake(plain)
    assert torch.equal(plain(x), model(x)) and not plain.slimkit_history
    save_model(plain, tmp_path / "p")
    assert size < (tmp_path / "p" / "model.safetensors").stat().st_size / 3  # uint8 indices, not fp32


def test_an_error_on_a_later_layer_leaves_every_layer_unshared():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(3, 2))
    with pytest.raises(ConfigError, match="layer '1' has 6 weights"):
        share(model, ShareConfig(bits=3))
    assert not shared_layers(model) and not getattr(model, "slimkit_history", [])


def test_nothing_to_share_is_said():
    with pytest.warns(CompressionWarning, match="share clustered no weight of Sequential"):
        share(nn.Sequential(nn.LayerNorm(4)), ShareConfig())
