"""The Recipe model: model sources, cross-field checks, the original, folders, round trips."""

import pytest

from slimkit.errors import ConfigError
from slimkit.recipe import ModelSource, Recipe, build_stage


def test_model_source_needs_exactly_one_origin():
    assert ModelSource(run="runs/x").kind == "run"
    assert ModelSource(factory="pkg.nets:build").kind == "factory"
    with pytest.raises(ConfigError, match="exactly one of registry, run or factory"):
        ModelSource(registry="cnn", run="runs/x")
    with pytest.raises(ConfigError, match="exactly one"):
        ModelSource()


def test_model_source_checks_names_and_knobs():
    with pytest.raises(ConfigError, match="unknown model 'resnt'. Did you mean 'resnet'"):
        ModelSource(registry="resnt")
    with pytest.raises(ConfigError, match="no knob 'chanels'. Did you mean 'channels'"):
        ModelSource(registry="cnn", knobs={"chanels": [8]})
    with pytest.raises(ConfigError, match="not a code reference"):
        ModelSource(factory="os.system('x')")
    assert ModelSource(registry="cnn", knobs={"channels": [8, 16]}).describe() == "cnn(channels=[8, 16])"


def test_untrained_registry_model_must_be_trained_first(tiny):
    tiny["stages"] = tiny["stages"][1:]
    with pytest.raises(ConfigError, match="stages.1.type: model.registry builds an untrained cnn"):
        Recipe.from_dict(tiny)
    tiny["model"] = {"run": "runs/teacher"}
    assert Recipe.from_dict(tiny).stages[0].type == "distill"


def test_original_defaults_to_the_leading_train_stages(tiny):
    recipe = Recipe.from_dict(tiny)
    assert recipe.original_number() == 1
    assert [recipe.folder(i) for i in range(4)] == ["00-source", "01-teacher", "02-distill", "03-prune"]
    assert Recipe.from_dict({**tiny, "original": "distill"}).original_number() == 2
    assert Recipe.from_dict({**tiny, "original": "source"}).original_number() == 0
    with pytest.raises(ConfigError, match="original: no stage named 'teachr'. Did you mean 'teacher'"):
        Recipe.from_dict({**tiny, "original": "teachr"})


def test_stage_names_are_folder_safe_and_not_recipe_fields(tiny):
    tiny["stages"][0]["name"] = "my teacher"
    with pytest.raises(ConfigError, match="may hold only letters"):
        Recipe.from_dict(tiny)
    tiny["stages"][0]["name"] = "data"
    with pytest.raises(ConfigError, match="'data' is a recipe field"):
        Recipe.from_dict(tiny)


def test_speedup_targets_must_be_measured(tiny):
    tiny["targets"] = {"speedup": {256: 8}}
    with pytest.raises(ConfigError, match="batch size 256 is not measured"):
        Recipe.from_dict(tiny)


def test_to_dict_round_trips_with_stage_fields_first(tiny):
    recipe = Recipe.from_dict(tiny)
    data = recipe.to_dict()
    assert list(data["stages"][0])[:4] == ["type", "name", "version", "epochs"]
    assert data["stages"][2]["structured"]["ratio"] == 0.25
    assert Recipe.from_dict(data) == recipe


def test_stages_built_from_python_and_dicts_alike():
    stage = build_stage({"type": "prune", "unstructured": {"amount": 0.8}})
    recipe = Recipe(model=ModelSource(run="r"), stages=[stage, {"type": "export", "format": "sparse"}])
    assert [s.type for s in recipe.stages] == ["prune", "export"]
    with pytest.raises(ConfigError, match="give one of structured, unstructured"):
        build_stage({"type": "prune"})
