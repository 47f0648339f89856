"""`slimkit search RECIPE`: search with the recipe's search stage and a trained teacher, in one
or two worker processes; errors name the recipe and the fix."""

import json

import pytest
import torch
import yaml

from slimkit.cli import main
from slimkit.export import load_model, save_model
from slimkit.models import build_model

DATA = {"name": "synthetic", "batch_size": 16, "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 96, "test_size": 24}}
STAGE = {"type": "search", "trials": 5,
         "space": {"stages": [2], "base_widths": [4, 8], "width_multipliers": [0.5, 1.0], "depths": [1], "kernels": [3, 5],
                   "separable": [False], "hidden": [8]},
         "constraints": {"latency_b256_ms": "3.0x"},
         "proxy": {"train": {"epochs": 1}}, "final": {"train": {"epochs": 1, "progress": False}},
         "latency": {"warmup": 0, "repeats": 2, "large_batch": 8}, "sampler": {"name": "random"}}


@pytest.fixture
def recipe(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    save_model(build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8), tmp_path / "teacher")
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"name": "cli-search", "data": DATA, "model": {"run": str(tmp_path / "teacher")},
                                    "stages": [STAGE]}, sort_keys=False))
    yield path
    torch.set_num_threads(before)


def test_search_then_train_the_chosen_student(recipe, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["search", str(recipe), "--trials", "3", "--timeout", "120", "--storage", str(tmp_path / "s.db"),
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Pareto front" in printed and "chosen: trial" in printed
    front = json.loads((out / "front.json").read_text())
    assert front["final"] and front["chosen"]["knobs"]["widths"][0] in (2, 4)
    assert (tmp_path / "s.db").is_file() and not (out / "search.db").exists()  # --storage was used
    student = load_model(out / "student")
    assert student.slimkit_spec["kwargs"]["widths"] == front["chosen"]["knobs"]["widths"]


def test_flags_reach_the_search(recipe, tmp_path, monkeypatch):
    """--workers/--timeout/--study/--threads are passed on (the workers themselves are tested in
    tests/search/test_workers.py and, on this search, by the benchmark's --quick run)."""
    from slimkit.search import students

    seen = {}
    real = students.run_workers

    def spy(target, **kwargs):
        seen.update(kwargs)
        return real(target, **{**kwargs, "workers": 1})

    monkeypatch.setattr(students, "run_workers", spy)
    out = tmp_path / "out"
    assert main(["search", str(recipe), "--workers", "2", "--trials", "2", "--timeout", "90", "--study", "mine",
                 "--threads", "1", "--out", str(out), "--no-train"]) == 0
    assert (seen["workers"], seen["study_name"], seen["threads"], seen["timeout"]) == (2, "mine", 1, 90.0)
    import optuna

    trials = optuna.load_study(study_name="mine", storage=f"sqlite:///{out / 'search.db'}").trials
    assert len(trials) == 2 and not (out / "student").exists()


def test_errors_name_the_recipe_and_the_fix(recipe, capsys):
    data = yaml.safe_load(recipe.read_text())
    data["stages"] = [{"type": "train", "epochs": 1}]
    recipe.write_text(yaml.safe_dump(data))
    assert main(["search", str(recipe)]) == 2
    assert "has no 'search' stage (stages: train)" in capsys.readouterr().err
    data["model"] = {"registry": "cnn"}
    data["stages"] = [{"type": "train", "epochs": 1}, STAGE]
    recipe.write_text(yaml.safe_dump(data))
    assert main(["search", str(recipe)]) == 2
    assert "--teacher" in capsys.readouterr().err
