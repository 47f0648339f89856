"""--set overrides: addressing by field, stage name and number; typed values; smoke settings."""

import pytest

from slimkit.errors import ConfigError
from slimkit.recipe import Recipe, apply_overrides, smoke_overrides
from slimkit.recipe.overrides import display_path, internal_path, parse_override

FIELDS = list(Recipe.model_fields)


def test_keys_resolve_to_fields_stage_names_and_numbers(tiny):
    data, origins = apply_overrides(tiny, ["data.limit=50", "teacher.epochs=3", "distill.train.epochs=1",
                                           "stages.3.structured.ratio=0.5", "model.knobs.hidden=16"], FIELDS)
    assert data["data"]["limit"] == 50 and data["model"]["knobs"]["hidden"] == 16
    assert data["stages"][0]["epochs"] == 3 and data["stages"][1]["train"]["epochs"] == 1
    assert data["stages"][2]["structured"]["ratio"] == 0.5
    assert origins[("stages", 2, "structured", "ratio")] == "stages.3.structured.ratio=0.5"
    assert tiny["data"].get("limit") is None  # the input is not changed


def test_values_are_read_as_yaml():
    assert parse_override("a=[16, 32]") == ("a", [16, 32])
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a = true") == ("a", True)
    assert parse_override("a=x y") == ("a", "x y")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("epochs")


def test_missing_sections_are_created(tiny):
    data, _ = apply_overrides(tiny, ["prune.finetune.lr=0.01", "targets.size_ratio=4"], FIELDS)
    assert data["stages"][2]["finetune"] == {"epochs": 1, "lr": 0.01}
    assert data["targets"] == {"size_ratio": 4}


def test_ambiguous_and_unknown_keys_explain_themselves(tiny):
    tiny["stages"].append({"type": "prune", "structured": {"ratio": 0.1}})
    with pytest.raises(ConfigError, match="2 stages are named 'prune'") as info:
        apply_overrides(tiny, ["prune.structured.ratio=0.2"], FIELDS)
    assert "stages.3, stages.4" in info.value.hint
    with pytest.raises(ConfigError, match="'distil' is neither a recipe field nor a stage name. Did you mean 'distill'"):
        apply_overrides(tiny, ["distil.train.epochs=1"], FIELDS)
    with pytest.raises(ConfigError, match="needs a stage number from 1 to 4"):
        apply_overrides(tiny, ["stages.0.epochs=1"], FIELDS)
    with pytest.raises(ConfigError, match="'stages.1.epochs' is not a mapping"):
        apply_overrides(tiny, ["teacher.epochs.x=1"], FIELDS)


def test_display_and_internal_paths_round_trip():
    for text in ("stages.2.structured.ratio", "data.limit", "stages.10.train.epochs"):
        assert display_path(internal_path(text)) == text


def test_smoke_overrides_make_every_stage_tiny(tiny):
    tiny["stages"][0]["epochs"] = 5
    tiny["stages"].append({"type": "transfer", "data": {"name": "digits"}, "epochs": 4})
    recipe = Recipe.from_dict(tiny)
    data, _ = apply_overrides(recipe.to_dict(), smoke_overrides(recipe, limit=40), FIELDS)
    small = Recipe.from_dict(data)
    assert small.data.limit == 40 and small.stages[0].epochs == 1 and small.stages[3].epochs == 1
    assert small.stages[3].data.limit == 40 and small.evaluation.repeats == 2
