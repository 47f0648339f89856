"""Model sources (zoo, saved run, user factory) and stage model save/reload, transfer heads, resizing."""

import textwrap

import pytest
import torch
from torch import nn

from slimkit.data import load_dataset
from slimkit.errors import ConfigError
from slimkit.export.serialize import record_change
from slimkit.imports import Trust
from slimkit.recipe import ModelSource
from slimkit.recipe.models import build_source, load_stage_model, save_stage_model
from slimkit.recipe.resize import resize_splits
from slimkit.recipe.stages.transfer import _new_head

SPLITS = load_dataset("synthetic", num_classes=3, shape=(1, 8, 8), size=30)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_nets.py").write_text(textwrap.dedent("""
        from torch import nn
        def build(width=4):
            return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 3))
        def not_a_model():
            return 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_nets"


def test_zoo_models_are_seeded_and_shaped_by_the_data():
    source = ModelSource(registry="cnn", knobs={"channels": [4], "hidden": 0})
    a, b = build_source(source, SPLITS, seed=3), build_source(source, SPLITS, seed=3)
    assert torch.equal(a.features[0].conv.weight, b.features[0].conv.weight)
    assert a(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_factory_models_save_and_reload_through_their_factory_only_when_trusted(user_module, tmp_path):
    ref = f"{user_module}:build"
    source = ModelSource(factory=ref, knobs={"width": 6})
    with pytest.raises(ConfigError, match="slimkit runs no code that you did not name"):
        build_source(source, SPLITS, seed=0)  # a recipe's factory is not trusted by default
    model = build_source(source, SPLITS, seed=0, trust=Trust({ref}))
    save_stage_model(model, tmp_path, source)
    with pytest.raises(ConfigError, match="model.json names code to import"):
        load_stage_model(tmp_path)  # nor is the factory a saved model names
    again = load_stage_model(tmp_path, Trust({ref}))
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(again(x), model.eval()(x))
    with pytest.raises(ConfigError, match="returned int, not a torch.nn.Module"):
        build_source(ModelSource(factory=f"{user_module}:not_a_model"), SPLITS, seed=0,
                     trust=Trust({f"{user_module}:not_a_model"}))


def test_saved_runs_load_as_sources(tmp_path):
    from slimkit.export import save_model
    from slimkit.models import build_model

    save_model(build_model("mlp", hidden=[4], input_size=8, num_classes=3), tmp_path / "r")
    model = build_source(ModelSource(run=str(tmp_path / "r")), SPLITS, seed=0)
    assert model.slimkit_spec["name"] == "mlp"


def test_a_new_head_is_replayed_on_load(tmp_path):
    from slimkit.models import build_model

    model = build_model("mlp", hidden=[4], input_size=8, num_classes=3)
    _new_head(model, "classifier.out", 5)
    record_change(model, "new_head", layer="classifier.out", num_classes=5)
    save_stage_model(model, tmp_path, ModelSource(registry="mlp"))
    assert load_stage_model(tmp_path)(torch.zeros(1, 1, 8, 8)).shape == (1, 5)
    with pytest.raises(ConfigError, match="head 'classifier.nope' is not a Linear layer"):
        _new_head(model, "classifier.nope", 5)


def test_resize_keeps_labels_and_changes_the_shape():
    resized = resize_splits(SPLITS, 16)
    assert resized.input_shape == (1, 16, 16) and len(resized.train) == len(SPLITS.train)
    assert int(resized.test[3][1]) == int(SPLITS.test[3][1]) and resized.meta["resized_from"] == [1, 8, 8]
    assert isinstance(resized.train, torch.utils.data.TensorDataset) and not isinstance(resized.train, nn.Module)
