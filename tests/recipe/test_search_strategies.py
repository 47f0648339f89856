"""Both new search strategies run as a recipe's search stage and, interrupted in the middle of
the search, resume (``run_recipe(..., resume=True)``) to the same result as an uninterrupted run."""

import json

import pytest

from slimkit.recipe import Recipe, run_recipe
from slimkit.search import darts as darts_module
from slimkit.search.nas import StudentObjective

SPACE = {"stages": [2], "width_multipliers": [0.5, 1.0, 2.0], "depths": [1], "kernels": [3], "separable": [False, True],
         "hidden": [0, 8]}
COMMON = {"type": "search", "space": SPACE, "proxy": {"train": {"epochs": 1}}, "final": {"train": {"epochs": 1}},
          "latency": {"warmup": 0, "repeats": 2, "large_batch": 8}}
STAGES = {
    # params, not a timing, breaks accuracy ties between candidates: the choice must not depend on noise
    "rl": {**COMMON, "strategy": "rl", "trials": 5, "rl": {"lr": 0.3}, "objectives": ["accuracy", "params"]},
    "darts": {**COMMON, "strategy": "darts", "darts": {"widths": [4, 8], "nodes": 2, "epochs": 3, "batch_size": 16,
                                                       "hidden": 8}},
}


def recipe(tiny, strategy: str) -> Recipe:
    tiny["stages"] = [tiny["stages"][0], STAGES[strategy]]
    return Recipe.from_dict(tiny)


def outcome(out) -> dict:
    """What must not change on resumption: the student, its proxy and final accuracy (timings
    are measured again, so they carry the machine's noise)."""
    metrics = json.loads((out / "02-search" / "metrics.json").read_text())
    chosen = {k: v for k, v in metrics["info"]["chosen"].items() if not k.startswith("latency")}
    return {"chosen": chosen | {"student": metrics["info"]["student"]},
            "accuracy": metrics["quality"]["accuracy"], "source": metrics["source"]}


def interrupt(strategy: str, monkeypatch) -> None:
    calls = []
    if strategy == "rl":  # killed inside the fourth trial's proxy training
        original = StudentObjective._proxy_accuracy

        def dies(self, model):
            calls.append(1)
            if len(calls) == 4:
                raise KeyboardInterrupt
            return original(self, model)

        monkeypatch.setattr(StudentObjective, "_proxy_accuracy", dies)
    else:  # killed while saving the second epoch's checkpoint
        original_save = darts_module._save

        def dies_saving(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return original_save(*args, **kwargs)

        monkeypatch.setattr(darts_module, "_save", dies_saving)


@pytest.mark.parametrize("strategy", ["rl", "darts"])
def test_search_strategy_runs_in_a_recipe_and_resumes_to_the_same_result(strategy, tiny, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_recipe(recipe(dict(tiny), strategy), whole, progress=False, report=False)
    expected = outcome(whole)
    assert expected["source"]["registry"] == ("dartsnet" if strategy == "darts" else "searchnet")
    cut = tmp_path / "cut"
    interrupt(strategy, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe(dict(tiny), strategy), cut, progress=False, report=False)
    status = json.loads((cut / "status.json").read_text())
    assert status["stages"][1]["state"] == "failed"
    monkeypatch.undo()
    run_recipe(recipe(dict(tiny), strategy), cut, resume=True, progress=False, report=False)
    assert outcome(cut) == expected
    info = json.loads((cut / "02-search" / "metrics.json").read_text())["info"]
    assert info["strategy"] == strategy
