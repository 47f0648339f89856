"""A finished tiny recipe run (shared by the report tests): train, prune with sensitivity
analysis, weight sharing, and an encoded export, on synthetic 1x8x8 data."""

from __future__ import annotations

import pytest
import torch

RECIPE = {
    "name": "report-demo",
    "data": {"name": "synthetic", "batch_size": 16,
             "options": {"num_classes": 3, "shape": [1, 8, 8], "size": 96, "test_size": 24}},
    "model": {"registry": "cnn", "knobs": {"channels": [4, 8], "hidden": 8}},
    "evaluation": {"batch_sizes": [1, 4], "repeats": 1, "warmup": 0, "final_repeats": 1},
    "targets": {"size_ratio": 1.5, "speedup": {4: 100.0}, "accuracy_drop": 100.0},
    "stages": [
        {"type": "train", "name": "teacher", "epochs": 2},
        {"type": "prune", "structured": {"target_macs": 0.6}, "sensitivity": True, "sensitivity_batches": 1,
         "finetune": {"epochs": 1}},
        {"type": "share", "bits": 3, "finetune": {"epochs": 1}},
        {"type": "export", "format": "encoded"},
    ],
}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """The run folder of RECIPE, run once per test session (report files written)."""
    from slimkit.recipe import Recipe, run_recipe

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("report") / "run"
        run_recipe(Recipe.from_dict(RECIPE), out, progress=False)
    finally:
        torch.set_num_threads(before)
    return out
