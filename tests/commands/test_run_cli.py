"""`slimkit run`: run, dry run, smoke settings, resume, and errors that name file, line and field."""

import json

import pytest
import torch
import yaml

from slimkit.cli import main

RECIPE = {
    "name": "cli-demo",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 96, "test_size": 24}},
    "model": {"registry": "cnn", "knobs": {"channels": [4, 8], "hidden": 8}},
    "evaluation": {"batch_sizes": [1, 4], "repeats": 1, "warmup": 0, "final_repeats": 1},
    "stages": [{"type": "train", "name": "teacher", "epochs": 3},
               {"type": "prune", "structured": {"ratio": 0.5}, "finetune": {"epochs": 1}}],
}


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield path
    torch.set_num_threads(before)


def test_run_writes_the_run_and_the_report(recipe_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(recipe_file), "--out", str(out), "--set", "teacher.epochs=1", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "report:" in printed.out and "smaller" in printed.out
    assert "stage 2/2 prune (prune) done" in printed.err
    assert (out / "report.html").is_file() and (out / "02-prune" / "metrics.json").is_file()
    assert json.loads((out / "recipe.resolved.json").read_text())["stages"][0]["epochs"] == 1
    # rerunning the same folder needs --resume, which finds every stage done
    assert main(["run", str(recipe_file), "--out", str(out), "--set", "teacher.epochs=1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["run", str(recipe_file), "--out", str(out), "--set", "teacher.epochs=1", "--resume",
                 "--no-progress", "--no-report"]) == 0
    assert "stage 1/2" not in capsys.readouterr().err  # nothing reran


def test_dry_run_and_smoke_print_the_plan_only(recipe_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(recipe_file), "--out", str(out), "--dry-run", "--smoke"]) == 0
    printed = capsys.readouterr().out
    assert "01-teacher" in printed and "epochs=1" in printed and "dry run: nothing was run" in printed
    assert not out.exists()


def test_recipe_errors_name_the_file_line_and_field(recipe_file, capsys):
    text = recipe_file.read_text().replace("ratio: 0.5", "ratio: 5")
    recipe_file.write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "ratio: 5" in l)
    assert main(["run", str(recipe_file), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"error: {recipe_file}:{line}: stages.2.structured.ratio (stage 2): Input should be less than 1" in err
    assert main(["run", str(recipe_file), "--dry-run", "--set", "teachr.epochs=1"]) == 2
    assert "Did you mean 'teacher'?" in capsys.readouterr().err
