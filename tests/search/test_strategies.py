"""search_students with strategy darts: the child is scored like a trial (cost, constraints,
proxy accuracy), becomes the chosen dartsnet, and trains fully with train_student."""

import json

import pytest
import torch

from slimkit.distillation import DistillConfig
from slimkit.errors import ConfigError
from slimkit.models import build_model
from slimkit.search.costs import LatencyConfig
from slimkit.search.darts_space import DARTS_FAMILY
from slimkit.search.nas import NASConfig
from slimkit.search.students import search_students, train_student
from slimkit.train import TrainConfig

ONE = DistillConfig(train=TrainConfig(epochs=1, progress=False))


def darts_config(**changes) -> NASConfig:
    return NASConfig(strategy="darts", darts={"widths": [4, 8], "nodes": 2, "epochs": 1, "batch_size": 16, "hidden": 8},
                     proxy=ONE, final=ONE, latency=LatencyConfig(warmup=0, repeats=2, large_batch=8), **changes)


def test_darts_child_is_scored_chosen_and_trained(teacher_and_data, tmp_path):
    teacher, loaders = teacher_and_data
    result = search_students(teacher, loaders, darts_config(), tmp_path)
    row = result.chosen
    assert row["family"] == DARTS_FAMILY and row["feasible"] and row["trained"] and 0 <= row["accuracy"] <= 1
    assert row["latency_b1_ms"] > 0 and row["params"] > 0 and row["knobs"]["widths"] == [4, 8]
    assert result.front == [row] and result.trials == 1
    front = json.loads((tmp_path / "front.json").read_text())
    assert front["strategy"] == "darts" and front["chosen"]["knobs"] == row["knobs"]
    assert (tmp_path / "front.png").is_file() and (tmp_path / "darts" / "result.json").is_file()
    student, trained = train_student(row["knobs"], teacher, loaders, darts_config())
    assert student.slimkit_spec["name"] == DARTS_FAMILY and len(trained.history) == 1
    again = search_students(teacher, loaders, darts_config(), tmp_path)  # finished: read back, not searched again
    assert again.chosen == row


def test_a_child_that_breaks_the_constraints_is_refused(teacher_and_data, tmp_path):
    teacher, loaders = teacher_and_data
    with pytest.raises(ConfigError, match="breaks the constraints"):
        search_students(teacher, loaders, darts_config(constraints={"params": 10}), tmp_path)


def test_slimkit_search_runs_a_strategy_from_the_recipe(tmp_path, capsys):
    import yaml

    from slimkit.cli import main
    from slimkit.export import load_model, save_model

    torch.manual_seed(0)
    save_model(build_model("cnn", input_size=8, num_classes=3, channels=[4, 8], hidden=8), tmp_path / "teacher")
    stage = {"type": "search", "strategy": "darts", "darts": {"widths": [4, 8], "nodes": 1, "epochs": 1, "batch_size": 16},
             "proxy": {"train": {"epochs": 1}}, "final": {"train": {"epochs": 1, "progress": False}},
             "latency": {"warmup": 0, "repeats": 2, "large_batch": 8}}
    data = {"name": "synthetic", "batch_size": 16, "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 96}}
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({"name": "cli-darts", "data": data, "model": {"run": str(tmp_path / "teacher")},
                                      "stages": [stage]}))
    assert main(["search", str(recipe), "--out", str(tmp_path / "out")]) == 0
    assert "chosen: trial 0" in capsys.readouterr().out
    student = load_model(tmp_path / "out" / "student")
    assert student.slimkit_spec["name"] == DARTS_FAMILY
