"""The trust model (SECURITY.md): code references are imported only when the user named them."""

from __future__ import annotations

import sys

import pytest
from rich.console import Console

from slimkit.errors import ConfigError
from slimkit.imports import Trust
from slimkit.recipe import Recipe, run_recipe

DATA = {"name": "synthetic", "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 40, "test_size": 10}}


def test_trust_allows_exactly_what_it_names():
    trust = Trust({"math:sqrt"})
    assert trust.allows("math:sqrt") and not trust.allows("math:floor")
    assert trust.load("math:sqrt", "a test")(9.0) == 3.0
    with pytest.raises(ConfigError, match=r"x.json names code to import \('os:system'\)") as refused:
        trust.load("os:system", "x.json")
    assert "--trust-code" in refused.value.hint
    granted = Trust({"a.b:c"}, granted_by="--trust-code")
    with pytest.raises(ConfigError) as refused:
        granted.require("os:system", "runs/x/00-source/model/model.json")
    assert "--trust-code trusts only the references the recipe names (a.b:c)" in refused.value.hint
    both = Trust({"m:f"}) | granted
    assert both.refs == {"m:f", "a.b:c"} and both.granted_by == "--trust-code"


def test_every_model_source_of_a_recipe_is_a_reference():
    recipe = Recipe.from_dict({
        "data": DATA, "model": {"factory": "pkg.nets:teacher"},
        "stages": [{"type": "train", "epochs": 1},
                   {"type": "distill", "student": {"factory": "pkg.nets:student", "knobs": {"w": 2}},
                    "teachers": [{"factory": "pkg.nets:teacher"}, {"factory": "pkg.other:extra"}]}],
    })
    assert recipe.references() == ["pkg.nets:teacher", "pkg.nets:student", "pkg.other:extra"]


def test_an_untrusted_reference_stops_the_run_before_anything_is_written(tmp_path):
    recipe = Recipe.from_dict({"data": DATA, "model": {"factory": "os:system", "knobs": {"command": "exit 3"}},
                               "stages": [{"type": "train", "epochs": 1}]})
    modules = set(sys.modules)
    with pytest.raises(ConfigError, match="'os:system'"):
        run_recipe(recipe, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="'os:system'"):  # trusting something else does not help
        run_recipe(recipe, tmp_path / "run", progress=False, trust=Trust({"os:getcwd"}))
    assert not (tmp_path / "run").exists() and set(sys.modules) >= modules


def test_a_dry_run_lists_every_reference_and_whether_it_is_trusted(tmp_path):
    recipe = Recipe.from_dict({
        "data": DATA, "model": {"registry": "mlp"},
        "stages": [{"type": "train", "epochs": 1}, {"type": "distill", "student": {"factory": "pkg.nets:student"}},
                   {"type": "distill", "student": {"factory": "os:system", "knobs": {"command": "exit 3"}}}],
    })
    console = Console(record=True, width=200)
    run_recipe(recipe, tmp_path / "run", dry_run=True, console=console, trust=Trust({"pkg.nets:student"}))
    text = console.export_text()
    assert "code this recipe imports: pkg.nets:student (trusted)" in text
    assert "code this recipe imports: os:system (NOT trusted" in text
    assert not (tmp_path / "run").exists()
