"""YAML loading: every problem named with file, line and field; tags refused; overrides located."""

import pytest

from slimkit.errors import ConfigError
from slimkit.recipe import load_recipe, parse_recipe

BASE = """\
name: demo
model: {registry: mlp}
data:
  name: synthetic
stages:
  - type: train
    epochs: 1
  - type: prune
    structured:
      ratio: 0.5
"""


def test_valid_recipe_loads_with_defaults_filled():
    recipe = parse_recipe(BASE)
    assert recipe.stages[1].structured.ratio == 0.5 and recipe.stages[1].finetune.epochs == 1


def test_unknown_stage_field_names_file_line_field_and_suggests(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(BASE.replace("    epochs: 1", "    epohcs: 1"))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    assert f"{path}:7: stages.1.epohcs (stage 1): unknown field 'epohcs'. Did you mean 'epochs'?" in str(info.value)


def test_nested_range_error_points_at_its_line():
    with pytest.raises(ConfigError, match=r"r.yaml:10: stages.2.structured.ratio \(stage 2\): Input should be less than 1"):
        parse_recipe(BASE.replace("ratio: 0.5", "ratio: 1.5"), source="r.yaml")


def test_unknown_stage_type_and_top_level_typo_reported_together():
    text = BASE.replace("type: prune", "type: prnue").replace("name: demo", "nmae: demo")
    with pytest.raises(ConfigError) as info:
        parse_recipe(text, source="r.yaml")
    message = str(info.value)
    assert message.startswith("2 problems in the recipe:")
    assert "r.yaml:8: stages.2.type (stage 2): unknown stage type 'prnue'. Did you mean 'prune'?" in message
    assert "r.yaml:1: nmae: unknown field 'nmae'. Did you mean 'name'?" in message


def test_types_are_checked():
    with pytest.raises(ConfigError, match=r"r.yaml:7: stages.1.epochs \(stage 1\): Input should be a valid integer"):
        parse_recipe(BASE.replace("epochs: 1", "epochs: many"), source="r.yaml")


def test_a_recipe_cannot_run_code(tmp_path):
    marker = tmp_path / "ran"
    text = BASE.replace("name: demo", f"name: !!python/object/apply:os.system ['touch {marker}']")
    with pytest.raises(ConfigError, match="r.yaml:1: name: the YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"):
        parse_recipe(text, source="r.yaml")
    with pytest.raises(ConfigError, match="YAML tag '!include' is not allowed"):
        parse_recipe(BASE.replace("name: synthetic", "name: !include other.yaml"), source="r.yaml")
    assert not marker.exists()


def test_duplicate_keys_and_bad_syntax_are_located():
    with pytest.raises(ConfigError, match="r.yaml:2: model: this key appears twice"):
        parse_recipe("model: {registry: mlp}\nmodel: {registry: cnn}\nstages: []\n", source="r.yaml")
    with pytest.raises(ConfigError, match="r.yaml:2: not valid YAML: mapping values are not allowed here"):
        parse_recipe("name: x\nmodel: a: b\n", source="r.yaml")


def test_override_problems_name_the_override():
    with pytest.raises(ConfigError, match=r"--set train.epochs=0: stages.1.epochs: Input should be greater than or equal to 1"):
        parse_recipe(BASE, overrides=["train.epochs=0"])
    assert parse_recipe(BASE, overrides=["stages.2.structured.ratio=0.25"]).stages[1].structured.ratio == 0.25


def test_missing_file_and_missing_stages():
    with pytest.raises(ConfigError, match="no recipe file at nowhere.yaml"):
        load_recipe("nowhere.yaml")
    with pytest.raises(ConfigError, match="stages: a recipe needs at least one stage"):
        parse_recipe("model: {registry: mlp}\n")
