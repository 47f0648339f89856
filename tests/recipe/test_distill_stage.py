"""The distill stage reports the student trained alone beside the distilled one, and with
``auto`` chooses its method on the validation split (kept for a resumed run)."""

import json

from slimkit.recipe import Recipe, run_recipe


def distill_stage(tiny, **fields):
    stage = {**tiny["stages"][1], **fields}
    stage["student"] = {"registry": "cnn", "knobs": {"channels": [2, 4], "hidden": 4}}
    return stage


def test_distilled_and_alone_students_are_reported_side_by_side(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], distill_stage(tiny, train={"epochs": 1})]
    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    info = json.loads((out / "02-distill" / "metrics.json").read_text())["info"]
    alone, distilled = info["alone"], info["distilled"]
    assert alone["epochs"] == distilled["epochs"] == 1 and len(alone["history"]) == 1
    assert 0 <= alone["test_acc"] <= 1 and 0 <= distilled["test_acc"] <= 1
    assert info["distillation_gain_points"] == 100 * (distilled["test_acc"] - alone["test_acc"])
    assert (out / "02-distill" / "alone" / "last.pt").is_file() and (out / "02-distill" / "train" / "last.pt").is_file()
    assert info["init"] == "random" and info["teacher_runtime"] == "eager"


def test_compare_alone_can_be_turned_off(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], distill_stage(tiny, train={"epochs": 1}, compare_alone=False)]
    run_recipe(Recipe.from_dict(tiny), tmp_path / "run", progress=False, report=False)
    info = json.loads((tmp_path / "run" / "02-distill" / "metrics.json").read_text())["info"]
    assert "alone" not in info and not (tmp_path / "run" / "02-distill" / "alone").exists()


def test_auto_chooses_on_validation_and_a_resume_reuses_the_choice(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], distill_stage(tiny, train={"epochs": 1}, auto=True, search_fraction=0.5,
                                                      compare_alone=False)]
    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    search = json.loads((out / "02-distill" / "search.json").read_text())
    names = [t["name"] for t in search["trials"]]
    assert names[:2] == ["init from teacher", "as configured"] and "DIST" in names
    scored = [t for t in search["trials"] if t["val_acc"] is not None]
    assert search["chosen"] == max(scored, key=lambda t: t["val_acc"])["name"]
    info = json.loads((out / "02-distill" / "metrics.json").read_text())["info"]
    assert info["search"]["chosen"] == search["chosen"]
    search["chosen"], search["config"]["init"] = "pinned", "teacher"  # a resumed stage must read this back
    (out / "02-distill" / "search.json").write_text(json.dumps(search))
    (out / "02-distill" / "metrics.json").unlink()
    run_recipe(Recipe.from_dict(tiny), out, resume=True, progress=False, report=False)
    info = json.loads((out / "02-distill" / "metrics.json").read_text())["info"]
    assert info["search"]["chosen"] == "pinned" and info["init"] == "teacher"


def test_teacher_assistants_run_as_a_chain_of_stages(tiny, tmp_path):
    tiny["stages"] = [tiny["stages"][0], distill_stage(tiny, train={"epochs": 1}, compare_alone=False,
                                                      assistants=[{"width": 0.75}])]
    out = tmp_path / "run"
    run_recipe(Recipe.from_dict(tiny), out, progress=False, report=False)
    info = json.loads((out / "02-distill" / "metrics.json").read_text())["info"]
    (step,) = info["assistants"]
    assert step["spec"] == {"width": 0.75} and len(step["history"]) == 1 and step["params"] > 0
    assert (out / "02-distill" / "assistant0" / "last.pt").is_file()


def test_bad_assistant_specs_fail_when_the_recipe_loads(tiny):
    import pytest

    from slimkit.errors import ConfigError

    tiny["stages"][1]["assistants"] = [{"name": "cnm"}]
    with pytest.raises(ConfigError, match="unknown model 'cnm'"):
        Recipe.from_dict(tiny)
