"""Every recipe in recipes/ loads and runs end to end at a tiny size (60 samples, 1 epoch per
stage) on fake Fashion-MNIST files, so a new example recipe is tested by being added."""

import json
from pathlib import Path

import pytest

from slimkit.recipe import load_recipe, run_recipe, smoke_overrides

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def test_the_default_recipe_is_there_and_aims_at_the_issue_targets():
    recipe = load_recipe(RECIPES[0].parent / "fashion-mnist.yaml")
    assert [s.type for s in recipe.stages] == ["train", "distill", "prune", "quantize", "export"]
    assert recipe.targets.size_ratio == 10 and recipe.targets.speedup == {1: 4, 256: 8}
    assert recipe.targets.accuracy_drop == 1.0


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_example_recipe_runs_at_a_tiny_size(path, tmp_path, fake_idx_data):
    recipe = load_recipe(path)
    out = tmp_path / "run"
    result = run_recipe(path, out, overrides=smoke_overrides(recipe, limit=60), progress=False)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "done" and all(s["state"] == "done" for s in status["stages"])
    assert result.final["summary"] and (out / "report.html").is_file() and (out / "report.md").is_file()
    assert len(status["stages"]) == len(recipe.stages)
