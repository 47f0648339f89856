import pytest
import torch
from torch import nn

from slimkit.errors import ConfigError
from slimkit.evaluate import artifact_bytes
from slimkit.export import load_model, save_model
from slimkit.models import MODELS, build_model
from slimkit.pruning import UnstructuredPruning, make_permanent, prune, sparsity
from slimkit.pruning.unstructured import get_mask
from slimkit.train import TrainConfig, Trainer


@pytest.mark.parametrize("model_name", MODELS.names())
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_every_model_reaches_the_amount(model_name, scope):
    model = build_model(model_name, input_size=8)
    prune(model, UnstructuredPruning(amount=0.8, scope=scope))
    report = sparsity(model)
    assert report["total"] == pytest.approx(0.8, abs=1e-3)
    if scope == "layer":
        assert all(s == pytest.approx(0.8, abs=0.05) for s in report["layers"].values())


def test_magnitude_removes_the_smallest_weights():
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.1, -3.0, 0.2, 2.0]]))
    prune(nn.Sequential(layer), UnstructuredPruning(amount=0.5))
    assert layer.weight.tolist() == [[0.0, -3.0, 0.0, 2.0]]


def test_global_scope_prunes_small_layers_harder():
    net = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with torch.no_grad():
        net[0].weight.uniform_(0.0, 0.01)
        net[1].weight.uniform_(1.0, 2.0)
    prune(net, UnstructuredPruning(amount=0.5, scope="global"))
    assert sparsity(net)["layers"] == {"0": 1.0, "1": 0.0}


def test_globs_and_types_select_layers():
    model = build_model("cnn", channels=[4, 8], hidden=8, input_size=8)
    prune(model, UnstructuredPruning(amount=0.5, include=["features.*"], types=["Conv2d"]))
    assert get_mask(model.features[0].conv) is not None and get_mask(model.classifier.fc1) is None
    with pytest.raises(ConfigError, match="selects no layer"):
        prune(model, UnstructuredPruning(amount=0.5, include=["nothing.*"]))


def test_random_is_seeded_and_increasing_amounts_only_add_to_the_mask():
    a, b = nn.Linear(20, 20), nn.Linear(20, 20)
    b.load_state_dict(a.state_dict())
    for net in (a, b):
        prune(nn.Sequential(net), UnstructuredPruning(method="random", amount=0.3, seed=3))
    assert torch.equal(a.weight == 0, b.weight == 0)
    before = a.weight == 0
    prune(nn.Sequential(a), UnstructuredPruning(method="random", amount=0.6, seed=4))
    assert bool((a.weight == 0)[before].all()) and float((a.weight == 0).float().mean()) == pytest.approx(0.6)


def test_masked_weights_stay_zero_through_training(tiny_loader):
    model = build_model("mlp", hidden=[16], input_size=8)
    prune(model, UnstructuredPruning(amount=0.7))
    zero = model.features[0].fc.weight == 0
    before = model.features[0].fc.weight.detach().clone()
    Trainer(model, TrainConfig(epochs=1, lr=0.05, progress=False)).fit(tiny_loader)
    after = model.features[0].fc.weight.detach()
    assert bool((after[zero] == 0).all()) and not torch.equal(after[~zero], before[~zero])


def test_make_permanent_keeps_values_and_removes_the_parametrization(example):
    model = build_model("lenet5", input_size=8)
    prune(model, UnstructuredPruning(amount=0.6))
    out = model(example)
    make_permanent(model)
    assert all(get_mask(m) is None for m in model.modules())
    assert isinstance(model.classifier.fc1.weight, nn.Parameter)
    assert torch.equal(model(example), out) and sparsity(model)["total"] == pytest.approx(0.6, abs=1e-3)
    assert not [c for c in model.slimkit_history if c["kind"] == "prune_masks"]


def test_masked_and_permanent_models_save_and_reload(example, tmp_path):
    model = build_model("cnn", channels=[4, 8], hidden=8, input_size=8)
    prune(model, UnstructuredPruning(amount=0.5, scope="global"))
    assert artifact_bytes(model) > 0  # masks own their storage, so safetensors accepts them
    save_model(model, tmp_path / "masked")
    reloaded = load_model(tmp_path / "masked")
    assert torch.equal(reloaded(example), model.eval()(example)) and get_mask(reloaded.features[0].conv) is not None
    save_model(make_permanent(model), tmp_path / "plain")
    assert torch.equal(load_model(tmp_path / "plain")(example), model(example))
